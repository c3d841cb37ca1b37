package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// TestWatchdogPingsOnlyWhileTheEngineChecksIn runs the watchdog against a
// notify socket of its own. Each tick asks whether the engine is alive;
// the next question shows the tick before it is over, so what reached the
// socket by then is all that tick sent.
func TestWatchdogPingsOnlyWhileTheEngineChecksIn(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "20000") // a tick every 10 ms
	t.Setenv("WATCHDOG_PID", "")

	asked := make(chan time.Duration)
	answer := make(chan bool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchdog(ctx, zap.NewNop(), func(within time.Duration) bool {
			asked <- within
			return <-answer
		})
		close(done)
	}()
	defer func() {
		cancel()
		for {
			select {
			case <-asked:
			case answer <- false:
			case <-done:
				return
			}
		}
	}()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// pinged reads what the socket holds without waiting: a datagram sent
	// is queued on the socket by the time sendmsg returns.
	pinged := func() bool {
		t.Helper()
		buf := make([]byte, 64)
		n, rerr := 0, error(nil)
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if errors.Is(rerr, unix.EAGAIN) {
			return false
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
		if got := string(buf[:n]); got != "WATCHDOG=1" {
			t.Fatalf("notify socket got %q", got)
		}
		return true
	}
	for i, alive := range []bool{false, false, true, false, true} {
		if within := <-asked; within != 10*time.Millisecond {
			t.Fatalf("tick %d: asks for a check-in within %s, want half of WatchdogSec", i, within)
		}
		answer <- alive
		<-asked // the tick is over
		if got := pinged(); got != alive {
			t.Fatalf("tick %d: engine alive %v, pinged %v", i, alive, got)
		}
		answer <- false
	}
}
