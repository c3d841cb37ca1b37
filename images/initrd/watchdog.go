package initrd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ParamWatchdog is cairn.watchdog=SECONDS: how long a boot from disk may
// take from cairn-init arming the watchdog until systemd pings it, and how
// long a network boot may go without moving a byte; 0 leaves the watchdog
// alone.
const ParamWatchdog = "cairn.watchdog"

// DefaultWatchdogTimeout is the bound without cairn.watchdog=: minutes
// more than a boot takes even under software emulation, short enough that a
// device hung in its initramfs is back without anyone pulling the power.
const DefaultWatchdogTimeout = 5 * time.Minute

// WatchdogDevice is the watchdog cairn-init arms and systemd's
// RuntimeWatchdogSec= pings: the first one the kernel registered, the
// board's hardware watchdog when initrd_modules names its driver, else the
// kernel's softdog.
const WatchdogDevice = "/dev/watchdog0"

// Watchdog is an armed watchdog device: once open it resets the machine
// unless pinged within its timeout.
type Watchdog struct {
	f        *os.File
	Identity string
	Timeout  time.Duration
}

// ArmWatchdog opens dev, which starts the watchdog, sets its timeout
// (the driver may round it; Timeout is what it took) and pings it once.
func ArmWatchdog(dev string, timeout time.Duration) (*Watchdog, error) {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	w := &Watchdog{f: f}
	fd := int(f.Fd())
	if info, err := unix.IoctlGetWatchdogInfo(fd); err == nil {
		w.Identity = unix.ByteSliceToString(info.Identity[:])
	}
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, int(timeout/time.Second)); err != nil {
		f.Close()
		return nil, fmt.Errorf("watchdog %s: set timeout %v: %w", dev, timeout, err)
	}
	secs, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("watchdog %s: read timeout: %w", dev, err)
	}
	w.Timeout = time.Duration(secs) * time.Second
	if err := unix.IoctlWatchdogKeepalive(fd); err != nil {
		f.Close()
		return nil, fmt.Errorf("watchdog %s: ping: %w", dev, err)
	}
	return w, nil
}

// HandOver closes the device without the magic close character, so the
// watchdog keeps running: whoever opens it next (systemd) must ping it
// before the timeout ends, or the machine resets.
func (w *Watchdog) HandOver() error {
	return w.f.Close()
}

// Ping starts the watchdog's timeout again.
func (w *Watchdog) Ping() error {
	return unix.IoctlWatchdogKeepalive(int(w.f.Fd()))
}

// handOver hands w, if armed, over to systemd just before cairn-init
// switches root.
func (w *Watchdog) handOver(logf func(string, ...any)) {
	if w == nil {
		return
	}
	if err := w.HandOver(); err != nil {
		logf("watchdog: %v", err)
	}
}

// progressInterval is how often a network boot's watchdog is pinged when
// bytes have moved since the last time.
const progressInterval = 10 * time.Second

// pingWhileMoving keeps w, if armed, alive during a network boot for as
// long as cairn-init moves bytes (/proc/self/io): a download or an install
// may take longer than the timeout, but one that stops moving, a stalled
// server or a write that never returns, lets the watchdog reset the
// machine, which then boots from the network again. The returned stop ends
// the pings.
func (w *Watchdog) pingWhileMoving(ctx context.Context) (stop func()) {
	if w == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c := &ioCounter{path: "/proc/self/io"}
	go func() {
		defer close(done)
		pingWhile(ctx, progressInterval, c.moved, w.Ping)
	}()
	return func() {
		cancel()
		<-done
	}
}

// pingWhile calls ping every interval when moved reports a different
// count than the time before, until ctx ends.
func pingWhile(ctx context.Context, interval time.Duration, moved func() (int64, error), ping func() error) {
	last, _ := moved()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := moved()
		if err != nil || n == last {
			continue
		}
		last = n
		_ = ping()
	}
}

// ioCounter counts the bytes this process has read and written through
// system calls (rchar and wchar of /proc/self/io: files, block devices,
// sockets), less its own reads of that file.
type ioCounter struct {
	path string
	own  int64
}

func (c *ioCounter) moved() (int64, error) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 0, err
	}
	// The file shows the counts before this read: it counts from the next.
	defer func() { c.own += int64(len(b)) }()
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "rchar" && k != "wchar") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", c.path, k, err)
		}
		total += n
	}
	return total - c.own, nil
}

// armBootWatchdog arms dev (WatchdogDevice) for a boot with the
// timeout cairn.watchdog= gives. It never fails the boot: a bad value
// falls back to the default, a device without a watchdog boots without,
// and each case is said on the console. It returns nil when nothing is
// armed.
func armBootWatchdog(dev string, params map[string]string, logf func(string, ...any)) *Watchdog {
	timeout := DefaultWatchdogTimeout
	if v, ok := params[ParamWatchdog]; ok {
		secs, err := strconv.ParseUint(v, 10, 16)
		switch {
		case err != nil:
			logf("%s=%s: not a number of seconds up to 65535; using %v", ParamWatchdog, v, timeout)
		case secs == 0:
			logf("%s=0: no watchdog", ParamWatchdog)
			return nil
		default:
			timeout = time.Duration(secs) * time.Second
		}
	}
	w, err := ArmWatchdog(dev, timeout)
	if err != nil {
		logf("no watchdog: %v", err)
		return nil
	}
	logf("watchdog %s (%s) armed: %v for the boot to reach systemd", dev, w.Identity, w.Timeout)
	return w
}
