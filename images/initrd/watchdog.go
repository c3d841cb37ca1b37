package initrd

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ParamWatchdog is cairn.watchdog=SECONDS: how long a boot from disk may
// take from cairn-init arming the watchdog until systemd pings it; 0 leaves
// the watchdog alone.
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

// armBootWatchdog arms dev (WatchdogDevice) for a boot from disk with the
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
