// Package initrd is the code of cairn-init, Cairn's /init: it checks the
// slot the bootloader chose, sets up dm-verity from its signed footer,
// measures it into the TPM, mounts root and /var (through dm-crypt when the
// state partition is encrypted), and switches to systemd.
package initrd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/statecrypt"
	"github.com/cairn-edge/cairn/partitions"
)

// Files the image builder puts into the initramfs, relative to its root.
const (
	// ReleaseKeyPath is the release public key (PEM) slot footers must be
	// signed with.
	ReleaseKeyPath = "etc/cairn/release-key.pub"
	// BoardPath holds the board name slot footers must carry.
	BoardPath = "etc/cairn/board"
)

// Where things go on the booted system.
const (
	Sysroot         = "/sysroot"
	MeasurementsLog = "/run/cairn/measurements.json"
	VerityName      = "cairn-root"
	Init            = "/sbin/init"
)

// ErrRefused means the slot failed a check: its footer, signature, board or
// dm-verity tree.
var ErrRefused = errors.New("slot refused")

// Config is what one run of cairn-init needs from its main.
type Config struct {
	// Console receives progress and the reason of a failure.
	Console io.Writer
	// DeviceTimeout bounds the wait for the slot and state partitions.
	DeviceTimeout time.Duration
	// Install writes a disk for cairn.install=.
	Install Installer
}

func (c *Config) logf(format string, args ...any) {
	fmt.Fprintf(c.Console, "cairn-init: "+format+"\n", args...)
}

// Run boots the slot named on the kernel command line, or the slot image
// a network boot names (cairn.pxe=diskless, cairn.install=DISK), and does
// not return on success: the process becomes systemd, or the machine
// reboots into what was installed.
func Run(ctx context.Context, c Config) error {
	if err := mountEarly(); err != nil {
		return err
	}
	if err := loadModules("/"); err != nil {
		return err
	}
	params, err := readCmdline("/")
	if err != nil {
		return err
	}
	switch mode := params[ParamPXE]; {
	case params[ParamInstall] != "":
		return runInstall(ctx, c, params)
	case mode == "diskless":
		return runDiskless(ctx, c, params)
	case mode != "":
		return fmt.Errorf("%w: %s=%s: the mode is diskless (or cairn.install=DISK)", ErrCmdline, ParamPXE, mode)
	}
	return runSlot(ctx, c, params)
}

// runSlot boots the slot partition the bootloader chose, under a watchdog
// (cairn.watchdog=) that systemd takes over: a boot that hangs, on a read
// that never returns or anything else, resets the device instead of
// waiting for someone to pull its power, and the bootloader counts the try.
func runSlot(ctx context.Context, c Config, params map[string]string) error {
	wd := armBootWatchdog(WatchdogDevice, params, c.logf)
	slot, err := partitions.CmdlineSlot("/")
	if err != nil {
		return err
	}
	dev, err := waitForLabel(ctx, slot.Label(), c.DeviceTimeout)
	if err != nil {
		return fmt.Errorf("slot %s: %w", slot, err)
	}
	c.logf("slot %s is %s", slot, dev)
	f, err := checkFooter(dev)
	if err != nil {
		return fmt.Errorf("slot %s: %w", slot, err)
	}
	root, err := mountVerified(ctx, c, string(slot), dev, f)
	if err != nil {
		return fmt.Errorf("slot %s: %w", slot, err)
	}
	state, err := waitForLabel(ctx, partitions.LabelState, c.DeviceTimeout)
	if err != nil {
		return err
	}
	if err := growStatePartition(state, f.Manifest.Board, c.logf); err != nil {
		// A state partition that cannot grow still holds the device's data.
		c.logf("state %s: not grown to the end of its disk: %v", state, err)
	}
	if err := openVar(ctx, c, state, f); err != nil {
		return fmt.Errorf("state %s: %w", state, err)
	}
	c.logf("root %s read-only, state %s on /var; starting %s", root, state, Init)
	wd.handOver(c.logf)
	return mount.SwitchRoot(Sysroot, Init)
}

// openVar mounts /var from the state partition dev, decrypting it when
// it is encrypted (mountVar), with the board switch and policy of the
// booted slot's footer f.
func openVar(ctx context.Context, c Config, dev string, f *footer.Footer) error {
	s, done, err := stateCryptFor(ctx, f, c.logf)
	if err != nil {
		return err
	}
	defer done()
	return mountVar(Sysroot, dev, statecrypt.ReportPath, s, c.logf)
}

// mountVerified sets up dm-verity over dev from its checked footer,
// measures the slot (named name in the TPM log) and mounts the verified
// root read-only at Sysroot.
func mountVerified(ctx context.Context, c Config, name, dev string, f *footer.Footer) (string, error) {
	c.logf("slot %s: release %s for %s, signature good, verity root %x", name, f.Manifest.Version, f.Manifest.Board, f.RootHash)
	root, err := SetupVerity("/dev", VerityName, dev, f)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRefused, err)
	}
	measure(ctx, c, name, f)
	if err := os.MkdirAll(Sysroot, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(root, Sysroot, "ext4", unix.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("%w: mount %s (dm-verity over %s) read-only: %w", ErrRefused, root, dev, err)
	}
	return root, nil
}

// mountEarly mounts what the kernel does not: /proc, /sys, /dev, /run.
func mountEarly() error {
	for _, m := range []struct{ fstype, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"tmpfs", "/run"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

// waitForLabel polls for the partition labelled label: disk drivers probe
// asynchronously after their modules load.
func waitForLabel(ctx context.Context, label string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		dev, err := partitions.FindByLabel("/", label)
		if err == nil || !errors.Is(err, partitions.ErrPartitionNotFound) {
			return dev, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w after %v", err, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkFooter reads the slot's footer and checks its signature against the
// release key and its board against the initramfs's.
func checkFooter(dev string) (*footer.Footer, error) {
	f, err := footer.ReadFromDevice(dev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	pub, err := channel.ReadReleasePublicKey("/" + ReleaseKeyPath)
	if err != nil {
		return nil, err
	}
	if err := f.Verify(pub); err != nil {
		return nil, fmt.Errorf("%w: footer of %s: %w", ErrRefused, dev, err)
	}
	board, err := os.ReadFile("/" + BoardPath)
	if err != nil {
		return nil, err
	}
	if want := strings.TrimSpace(string(board)); f.Manifest.Board != want {
		return nil, fmt.Errorf("%w: footer of %s is for board %q, this initramfs for %q", ErrRefused, dev, f.Manifest.Board, want)
	}
	return f, nil
}

// measure extends the TPM's Cairn PCR with the slot's identity when there
// is a TPM. A TPM that fails leaves the slot unmeasured, which the agent
// reports and its health gate judges (require_tpm); secrets sealed to the
// PCR stay sealed either way.
func measure(ctx context.Context, c Config, slot string, f *footer.Footer) {
	if _, err := os.Stat(tpm.DefaultDevice); err != nil {
		c.logf("no TPM (%s): slot %s unmeasured", tpm.DefaultDevice, slot)
		return
	}
	id, err := f.Identity(slot)
	if err == nil {
		var t *tpm.TPM
		if t, err = tpm.Open(ctx, tpm.DefaultDevice); err == nil {
			defer t.Close()
			if err = os.MkdirAll(filepath.Dir(MeasurementsLog), 0o755); err == nil {
				var e tpm.Event
				if e, err = t.Measure(MeasurementsLog, id); err == nil {
					c.logf("measured slot %s into PCR %d: %x", slot, e.PCR, e.PCRAfter)
					return
				}
			}
		}
	}
	c.logf("TPM: %v; slot %s unmeasured", err, slot)
}

// Fail prints why the boot stopped and reboots after delay, so that the
// bootloader's try counter moves a slot on trial to the fallback.
func Fail(console io.Writer, err error, delay time.Duration) {
	fmt.Fprintf(console, "cairn-init: boot failed: %v\ncairn-init: rebooting in %v\n", err, delay)
	time.Sleep(delay)
	unix.Sync()
	if rerr := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); rerr != nil {
		fmt.Fprintf(console, "cairn-init: reboot: %v\n", rerr)
	}
	select {} // PID 1 must not exit: the kernel would panic
}
