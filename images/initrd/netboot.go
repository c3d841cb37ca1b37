package initrd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/partitions"
)

// Kernel parameters of a network boot (docs/images.md, "PXE").
const (
	// ParamPXE is cairn.pxe=diskless: run the slot image fetched from
	// ParamSlotURL from RAM.
	ParamPXE = "cairn.pxe"
	// ParamInstall is cairn.install=DISK: write the full disk layout with
	// the fetched slot image onto DISK and reboot into it.
	ParamInstall = "cairn.install"
	// ParamSlotURL is cairn.slot_url=URL, the slot image over HTTP.
	ParamSlotURL = "cairn.slot_url"
)

// ErrCmdline means the kernel parameters of a network boot are incomplete
// or unknown.
var ErrCmdline = errors.New("bad cairn kernel parameters")

// netboot is where a fetched slot image is kept: a tmpfs of its own, so
// that it may take most of the RAM.
const netbootDir = "/run/cairn/netboot"

// readCmdline returns the key=value kernel parameters; the last of a key
// wins, as for the kernel.
func readCmdline(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err != nil {
		return nil, fmt.Errorf("kernel parameters: %w", err)
	}
	params := map[string]string{}
	for _, tok := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			params[k] = v
		}
	}
	return params, nil
}

// dhcpUp brings up the wired interfaces and configures the first DHCPv4
// lease any of them gets, with u-root's DHCP client.
func dhcpUp(ctx context.Context, c Config) error {
	ifs, err := dhclient.Interfaces("^(eth|en)")
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, l := range ifs {
		if _, err := dhclient.IfUp(l.Attrs().Name, 10*time.Second); err != nil {
			c.logf("network: %s: %v", l.Attrs().Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.DeviceTimeout)
	defer cancel()
	var errs []error
	for r := range dhclient.SendRequests(ctx, ifs, true, false, dhclient.Config{Timeout: 5 * time.Second, Retries: 5}, 10*time.Second) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Interface.Attrs().Name, r.Err))
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			errs = append(errs, fmt.Errorf("%s: configure lease: %w", r.Interface.Attrs().Name, err))
			continue
		}
		m, _ := r.Lease.Message()
		c.logf("network: %s is %s (DHCP server %s)", r.Interface.Attrs().Name, m.YourIPAddr, m.ServerIPAddr)
		return nil
	}
	return fmt.Errorf("network: no DHCP lease on %d interfaces: %w", len(ifs), errors.Join(errs...))
}

// fetchSlot downloads the slot image at url into a file on a tmpfs of its
// own, leaving all-zero blocks as holes so that RAM holds only the data.
func fetchSlot(ctx context.Context, url string) (string, error) {
	if err := os.MkdirAll(netbootDir, 0o700); err != nil {
		return "", err
	}
	if err := unix.Mount("tmpfs", netbootDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=90%"); err != nil {
		return "", fmt.Errorf("mount tmpfs on %s: %w", netbootDir, err)
	}
	body, size, err := httpGet(ctx, url)
	if err != nil {
		return "", err
	}
	defer body.Close()
	path := filepath.Join(netbootDir, "slot.img")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	counted := &countingReader{r: body}
	var r io.Reader = counted
	if strings.HasSuffix(url, ".zst") {
		// The slot compressed: a fraction of the bytes over the network.
		dec, err := zstd.NewReader(counted, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return "", fmt.Errorf("fetch %s: %w", url, err)
		}
		defer dec.Close()
		r = dec
	}
	n, err := copySparse(f, r)
	if err != nil {
		return "", fmt.Errorf("fetch %s: at byte %d: %w", url, n, err)
	}
	if size >= 0 && counted.n != size {
		return "", fmt.Errorf("fetch %s: got %d of %d bytes", url, counted.n, size)
	}
	return path, f.Truncate(n)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// httpGet starts fetching url and returns the body and its length (-1
// when not known).
func httpGet(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}

// copySparse copies r to the start of f, seeking over all-zero 4 KiB
// blocks, and returns the bytes read.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	zero := make([]byte, 4096)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		for b := 0; b < n; b += 4096 {
			blk := buf[b:min(b+4096, n)]
			if bytes.Equal(blk, zero[:len(blk)]) {
				continue
			}
			if _, werr := f.WriteAt(blk, off+int64(b)); werr != nil {
				return off, werr
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// attachLoop makes a loop device over file with the loop flags given
// (unix.LO_FLAGS_READ_ONLY for a slot image).
func attachLoop(file string, flags uint32) (string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("loop: %w", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("loop: LOOP_CTL_GET_FREE: %w", err)
	}
	// The kernel makes the loop device read-only unless both the loop
	// device and the file are open for writing.
	mode := os.O_RDWR
	if flags&unix.LO_FLAGS_READ_ONLY != 0 {
		mode = os.O_RDONLY
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	var lf *os.File
	for i := 0; i < 50; i++ { // devtmpfs makes the node as the device appears
		if lf, err = os.OpenFile(dev, mode, 0); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return "", fmt.Errorf("loop: %w", err)
	}
	defer lf.Close()
	bf, err := os.OpenFile(file, mode, 0)
	if err != nil {
		return "", fmt.Errorf("loop: %w", err)
	}
	defer bf.Close()
	cfg := unix.LoopConfig{Fd: uint32(bf.Fd()), Info: unix.LoopInfo64{Flags: flags}}
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		return "", fmt.Errorf("loop: %s over %s: %w", dev, file, err)
	}
	return dev, nil
}

// runDiskless boots the slot image at cairn.slot_url= from RAM: fetched
// into a tmpfs, its footer checked before anything else reads it, then
// dm-verity over a loop device. /var is the local partition labelled
// CAIRN_STATE when there is one, else a tmpfs.
func runDiskless(ctx context.Context, c Config, params map[string]string) error {
	wd := armBootWatchdog(WatchdogDevice, params, c.logf)
	stop := wd.pingWhileMoving(ctx)
	file, f, err := fetchChecked(ctx, c, params)
	if err != nil {
		return err
	}
	loop, err := attachLoop(file, unix.LO_FLAGS_READ_ONLY)
	if err != nil {
		return err
	}
	root, err := mountVerified(ctx, c, string(partitions.SlotNetwork), loop, f)
	if err != nil {
		return fmt.Errorf("slot image %s: %w", params[ParamSlotURL], err)
	}
	state, err := waitForLabel(ctx, partitions.LabelState, 5*time.Second)
	switch {
	case err == nil:
		if err := openVar(ctx, c, state, f); err != nil {
			return fmt.Errorf("state %s: %w", state, err)
		}
	case errors.Is(err, partitions.ErrPartitionNotFound):
		c.logf("no %s partition: /var is in RAM", partitions.LabelState)
		state = "tmpfs"
		if err := mountRAMState(Sysroot); err != nil {
			return err
		}
	default:
		return err
	}
	c.logf("root %s read-only from RAM, state %s on /var; starting %s", root, state, Init)
	stop()
	wd.handOver(c.logf)
	return mount.SwitchRoot(Sysroot, Init)
}

// fetchChecked brings up the network, fetches the slot image and checks
// its footer: signature, release key and board.
func fetchChecked(ctx context.Context, c Config, params map[string]string) (string, *footer.Footer, error) {
	url := params[ParamSlotURL]
	if url == "" {
		return "", nil, fmt.Errorf("%w: a network boot needs %s=URL", ErrCmdline, ParamSlotURL)
	}
	if err := dhcpUp(ctx, c); err != nil {
		return "", nil, err
	}
	start := time.Now()
	file, err := fetchSlot(ctx, url)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", nil, err
	}
	c.logf("fetched %s: %s in %v", url, partitions.FormatSize(fi.Size()), time.Since(start).Round(time.Millisecond))
	f, err := checkFooter(file)
	if err != nil {
		return "", nil, fmt.Errorf("slot image %s: %w", url, err)
	}
	return file, f, nil
}

// mountRAMState puts a tmpfs seeded like a new state partition on
// sysroot/var.
func mountRAMState(sysroot string) error {
	staging := "/run/cairn/state"
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", staging, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", staging, err)
	}
	varDir := filepath.Join(sysroot, "var")
	if err := seedState(varDir, staging); err != nil {
		return err
	}
	if err := unix.Mount(staging, varDir, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to %s: %w", staging, varDir, err)
	}
	return nil
}
