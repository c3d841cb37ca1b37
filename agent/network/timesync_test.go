package network

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// offsetClock is a clock that runs off from the real one by a fixed
// amount until Set moves it.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
	sets   int
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
	c.sets++
	return nil
}

// startChrony runs chronyd as an NTP server in n, serving its local clock
// (which is this machine's) at stratum 8 without touching it (-x).
func startChrony(t *testing.T, n *testNS) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "chrony.conf")
	err := os.WriteFile(conf, []byte("local stratum 8\nallow all\ncmdport 0\n"+
		"pidfile "+filepath.Join(dir, "chronyd.pid")+"\n"+
		"driftfile "+filepath.Join(dir, "drift")+"\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.name, "chronyd", "-d", "-x", "-u", "root", "-f", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chronyd: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// A box that booted three hours in the past (no RTC) is stepped to the
// time of a real chronyd; a query to a dead server first is skipped.
func TestTimeSyncStepsAClockThatIsHoursOffAgainstChrony(t *testing.T) {
	needRoot(t, "chronyd")
	dev, srv := newNS(t), newNS(t)
	veth(t, dev, "eth0", nil, srv, "srv0")
	dev.ip(t, "addr", "add", "10.78.0.2/24", "dev", "eth0")
	dev.ip(t, "link", "set", "eth0", "up")
	srv.ip(t, "addr", "add", "10.78.0.1/24", "dev", "srv0")
	startChrony(t, srv)

	clock := &offsetClock{offset: -3 * time.Hour}
	ts := &TimeSync{Servers: []string{"10.78.0.9", "10.78.0.1"}, Clock: clock, Timeout: time.Second, Namespace: &dev.ns}
	var res SyncResult
	var err error
	waitFor(t, "chronyd to answer", func() bool {
		res, err = ts.Sync(context.Background())
		return err == nil
	})
	if res.Server != "10.78.0.1" || !res.Stepped {
		t.Fatalf("result %+v", res)
	}
	if off := res.Offset - 3*time.Hour; off.Abs() > 5*time.Second {
		t.Errorf("offset %v, want about 3h", res.Offset)
	}
	if clock.offset.Abs() > 5*time.Second {
		t.Errorf("clock still %v off after the step", clock.offset)
	}

	// In step already: no second step.
	res, err = ts.Sync(context.Background())
	if err != nil || res.Stepped || clock.sets != 1 {
		t.Errorf("second sync %+v, %v, %d steps", res, err, clock.sets)
	}
}

func TestTimeSyncWithoutServersSaysSo(t *testing.T) {
	_, err := (&TimeSync{Clock: &offsetClock{}}).Sync(context.Background())
	if !errors.Is(err, ErrNoTimeServer) {
		t.Fatalf("err = %v", err)
	}
}
