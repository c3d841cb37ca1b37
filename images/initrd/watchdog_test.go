package initrd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/tests/vmtest"
)

// TestWatchdogResetsAHungBoot arms the kernel's softdog in a QEMU guest the
// way cairn-init does, hands it over, and then hangs, as the boot would on
// a read that never returns. The kernel must reset the machine: the guest
// prints no result, and QEMU (run with -no-reboot) exits long before the
// test's own time is up.
func TestWatchdogResetsAHungBoot(t *testing.T) {
	if vmtest.InGuest() {
		hangUnderTheWatchdog(t)
		return
	}
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped under -short")
	}
	cache, err := vmtest.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	var console strings.Builder
	g := vmtest.Guest{Run: "^TestWatchdogResetsAHungBoot$", Modules: []string{"softdog"}, Timeout: 4 * time.Minute}
	res, err := vmtest.Boot(context.Background(), g, cache, t.TempDir(), func(l string) {
		t.Log(l)
		console.WriteString(l + "\n")
	})
	if res != nil {
		t.Logf("guest built in %v, booted and reset in %v", res.Build.Round(time.Millisecond), res.Boot.Round(time.Millisecond))
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("the guest was still running when its time was up: nothing reset it (%v)", err)
	case !errors.Is(err, vmtest.ErrNoResult):
		t.Fatalf("the guest ended with %v, want no result: it should have been reset while it hung", err)
	}
	for _, want := range []string{"cairn-watchdog-test: handed over, still active", "Initiating system reboot"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console has no %q", want)
		}
	}
}

// hangUnderTheWatchdog runs in the guest: it arms the watchdog with a
// short timeout, checks what the kernel says of it before and after the
// hand-over, and then waits to be reset.
func hangUnderTheWatchdog(t *testing.T) {
	const timeout = 5 * time.Second
	w, err := ArmWatchdog(WatchdogDevice, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if w.Identity != "Software Watchdog" || w.Timeout != timeout {
		t.Fatalf("armed %q with %v, want the softdog with %v", w.Identity, w.Timeout, timeout)
	}
	wantState(t, "active")
	if err := w.HandOver(); err != nil {
		t.Fatal(err)
	}
	wantState(t, "active")
	fmt.Println("cairn-watchdog-test: handed over, still active")
	time.Sleep(3 * time.Minute)
	t.Fatal("the watchdog did not reset the machine")
}

func wantState(t *testing.T, want string) {
	t.Helper()
	b, err := os.ReadFile("/sys/class/watchdog/watchdog0/state")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Fatalf("watchdog0 is %s, want %s", got, want)
	}
}

// TestBootWatchdogParameter checks how cairn.watchdog= is read; the device
// is a path that does not exist, so nothing is armed.
func TestBootWatchdogParameter(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog0")
	for _, c := range []struct {
		value string
		want  []string
	}{
		{"0", []string{"cairn.watchdog=0: no watchdog"}},
		{"ten", []string{"cairn.watchdog=ten: not a number of seconds up to 65535; using 5m0s", "no watchdog: open " + dev}},
		{"70000", []string{"cairn.watchdog=70000: not a number of seconds up to 65535; using 5m0s"}},
		{"90", []string{"no watchdog: open " + dev}},
	} {
		var log strings.Builder
		logf := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
		if w := armBootWatchdog(dev, map[string]string{ParamWatchdog: c.value}, logf); w != nil {
			t.Errorf("%s=%s armed %s", ParamWatchdog, c.value, dev)
		}
		for _, want := range c.want {
			if !strings.Contains(log.String(), want) {
				t.Errorf("%s=%s: log %q lacks %q", ParamWatchdog, c.value, log.String(), want)
			}
		}
		if c.value == "0" && strings.Contains(log.String(), "open") {
			t.Errorf("%s=0 opened the device: %q", ParamWatchdog, log.String())
		}
	}
}

// TestNetworkBootPingsOnlyWhileBytesMove runs the ping loop on a scripted
// byte count: a ping for each tick whose count moved, none while it stood
// still.
func TestNetworkBootPingsOnlyWhileBytesMove(t *testing.T) {
	counts := []int64{0, 10, 20, 20, 20, 35, 35}
	var ticks, pings int
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	moved := func() (int64, error) {
		n := counts[min(ticks, len(counts)-1)]
		if ticks++; ticks > len(counts) {
			cancel()
		}
		return n, nil
	}
	pingWhile(ctx, time.Millisecond, moved, func() error { pings++; return nil })
	if pings != 3 { // 0->10, 10->20, 20->35
		t.Errorf("%d pings for counts %v, want 3", pings, counts)
	}
}

// TestIOCounterLeavesOutItsOwnReads reads this process's /proc/self/io
// twice with nothing else moving bytes in between: the count must not
// grow from the reads of the file itself, and it must grow when the
// process writes.
func TestIOCounterLeavesOutItsOwnReads(t *testing.T) {
	c := &ioCounter{path: "/proc/self/io"}
	first, err := c.moved()
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.moved()
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("count went from %d to %d with only the counter's own reads", first, second)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "f"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := c.moved()
	if err != nil {
		t.Fatal(err)
	}
	if third < second+4096 {
		t.Errorf("count went from %d to %d after writing 4096 bytes", second, third)
	}
}
