package initrd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/boards"
)

// Installer writes the board's full disk layout onto device: slotImage in
// slot A, bootImage on the boot partition, then reads it back.
// cmd/cairn-init gives images/disk's WriteDevice.
type Installer func(ctx context.Context, b *boards.Board, device, slotImage, bootImage string, logf func(string, ...any)) error

// ParamBootURL is cairn.boot_url=URL, the boot partition's filesystem an
// install writes (cairn image pxe makes it).
const ParamBootURL = "cairn.boot_url"

// runInstall writes the full disk layout onto the disk cairn.install=
// names: the fetched slot image, checked before use, in slot A, the boot
// partition from cairn.boot_url= with slot A committed, a GPT over the whole
// disk. disk.WriteDevice reads table and slot back; then the machine
// reboots into the installed disk.
func runInstall(ctx context.Context, c Config, params map[string]string) error {
	target, bootURL := params[ParamInstall], params[ParamBootURL]
	if !strings.HasPrefix(target, "/dev/") || bootURL == "" {
		return fmt.Errorf("%w: an install needs %s=/dev/DISK and %s=URL, got %q and %q", ErrCmdline, ParamInstall, ParamBootURL, target, bootURL)
	}
	// A download or an install may outlast the watchdog's timeout, as
	// long as it moves bytes; the installed disk's boot arms it anew.
	wd := armBootWatchdog(WatchdogDevice, params, c.logf)
	defer wd.pingWhileMoving(ctx)()
	file, f, err := fetchChecked(ctx, c, params)
	if err != nil {
		return err
	}
	b, err := boards.Load(f.Manifest.Board)
	if err != nil {
		return err
	}
	bootImg := filepath.Join(netbootDir, "boot.img")
	if err := fetchFile(ctx, bootURL, bootImg); err != nil {
		return err
	}
	if err := waitForPath(ctx, target, c.DeviceTimeout); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	start := time.Now()
	if c.Install == nil {
		return fmt.Errorf("%w: this cairn-init cannot install", ErrCmdline)
	}
	if err := c.Install(ctx, b, target, file, bootImg, c.logf); err != nil {
		return err
	}
	c.logf("installed release %s on %s in %v, verified; rebooting into it", f.Manifest.Version, target, time.Since(start).Round(time.Millisecond))
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	select {}
}

// fetchFile downloads url to path on the netboot tmpfs.
func fetchFile(ctx context.Context, url, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	body, size, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	n, err := copySparse(f, body)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return f.Truncate(n)
}

// waitForPath polls for a device node: disk drivers probe asynchronously.
func waitForPath(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w after %v", path, err, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
