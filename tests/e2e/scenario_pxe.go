package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/daemon"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/images/disk"
	"github.com/cairn-edge/cairn/partitions"
)

// PXEDiskSize is the empty disk of the network-booted device.
const PXEDiskSize = 4 << 30

// PXEServer serves the artifacts' PXE bundle to the guest over HTTP and
// its iPXE scripts, rendered for that address, over QEMU's TFTP.
type PXEServer struct {
	TFTP string // the directory QEMU's TFTP serves: boot.ipxe, install.ipxe
	URL  string // the bundle as the guest sees it
	srv  *http.Server
}

// ServePXE serves art.PXE and writes its scripts for the served address
// into dir. It checks first that the bundle's own scripts are what
// disk.IPXEScript renders for the address they were built for, so the
// scripts served are the command's, moved.
func ServePXE(art *Artifacts, dir string) (*PXEServer, error) {
	version := art.Versions[0]
	scripts := map[string]string{disk.PXEDiskless: "", disk.PXEInstall: PXEInstallDisk}
	for name, installDisk := range scripts {
		built, err := os.ReadFile(filepath.Join(art.PXE, name))
		if err != nil {
			return nil, fmt.Errorf("pxe bundle: %w", err)
		}
		want, err := disk.IPXEScript(art.Board, version, PXEBuildURL, installDisk)
		if err != nil {
			return nil, err
		}
		if string(built) != want {
			return nil, fmt.Errorf("pxe bundle %s is not what disk.IPXEScript renders:\n%s\nwant:\n%s", name, built, want)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &PXEServer{TFTP: dir, URL: fmt.Sprintf("http://%s:%d/", GuestHost, ln.Addr().(*net.TCPAddr).Port),
		srv: &http.Server{Handler: http.FileServer(http.Dir(art.PXE)), ReadHeaderTimeout: 30 * time.Second}}
	go s.srv.Serve(ln)
	for name, installDisk := range scripts {
		script, err := disk.IPXEScript(art.Board, version, s.URL, installDisk)
		if err != nil {
			s.Close()
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o644); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close stops the HTTP server.
func (s *PXEServer) Close() error { return s.srv.Close() }

// NewPXELab is a Lab whose device has an empty disk and boots from the
// network: the artifacts' PXE bundle of the first release, served from the
// host. It joins its own k3s server and follows its own channel.
func NewPXELab(ctx context.Context, art *Artifacts, dir string, console io.Writer) (*Lab, error) {
	tftp := filepath.Join(dir, "tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		return nil, err
	}
	l, err := newLab(ctx, art, dir, console, true, func(ch *Channel, dir string, cfg DeviceConfig) (*Device, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		d, err := NewEmptyDevice(ctx, ch, dir, PXEDiskSize, cfg)
		if err != nil {
			return nil, err
		}
		// The diskless boot holds the slot image in RAM.
		d.Memory, d.TFTP = 2048, tftp
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	if l.PXE, err = ServePXE(art, tftp); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// DisklessBoot powers the device on with boot.ipxe: it runs release 1.0.0
// from RAM, reports slot pxe with no slot table, measured, with nothing to
// update; its node is Ready and its attestation verifies on the host as
// 1.0.0 in slot pxe.
func (l *Lab) DisklessBoot(ctx context.Context) (*Step, error) {
	l.Device.BootFile = disk.PXEDiskless
	m, err := l.Device.PowerOn(ctx)
	if err != nil {
		return nil, err
	}
	st, err := m.WaitStatus(ctx, 0, func(s *Status) bool { return s.Update != nil })
	if err != nil {
		return nil, err
	}
	l.Timing("power on to the agent answering (diskless)", m.Uptime())
	var errs []error
	d := st.Diskless
	if st.Booted() != partitions.SlotNetwork || len(st.Slots) != 0 || d == nil || d.Release != "1.0.0" || !strings.HasPrefix(d.Device, "/dev/loop") {
		errs = append(errs, fmt.Errorf("diskless boot: %s, diskless %+v; want slot pxe, no slots, release 1.0.0 on a loop device", st.Describe(), d))
	}
	if v := st.MeasuredVersion(); v != "1.0.0" || !st.Measurement.Measured || !st.Measurement.MatchesManifest {
		errs = append(errs, fmt.Errorf("measured release %q, want 1.0.0 measured and matching its manifest: %s", v, st.Describe()))
	}
	if st.Phase() != update.PhaseIdle || st.Update.Reason != daemon.ErrDiskless.Error() {
		errs = append(errs, fmt.Errorf("update: %s, want idle (%s)", st.Describe(), daemon.ErrDiskless))
	}
	node, err := l.K3s.WaitNode(ctx, func(n Node) bool { return n.Ready })
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	l.Timing("power on to the node Ready (diskless)", m.Uptime())
	l.Logf("node %s is Ready on the k3s server", node.Name)
	if err := l.verifyAttestation(ctx, m, 0, "1.0.0", partitions.SlotNetwork); err != nil {
		errs = append(errs, err)
	}
	if err := m.WaitBootFinished(ctx, 0); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.0.0", Slot: string(partitions.SlotNetwork), Result: "running from RAM (diskless)", Took: m.Uptime()}, errors.Join(errs...)
}

// installedRe is cairn-init's last word before it reboots into the disk
// it wrote.
var installedRe = regexp.MustCompile(`cairn-init: installed release 1\.0\.0 on ` + regexp.QuoteMeta(PXEInstallDisk) + ` in \S+, verified; rebooting into it`)

// InstallBoot powers the device off and on again with install.ipxe:
// cairn-init writes the disk layout and 1.0.0 into slot A and reboots,
// and the device then boots from its own disk as on a first boot: slot A
// booted and committed, measured 1.0.0, node Ready with label
// cairn.dev/slot=a, attestation verifying as 1.0.0 in slot A.
func (l *Lab) InstallBoot(ctx context.Context) (*Step, error) {
	l.Device.PowerOff()
	l.Device.BootFile = disk.PXEInstall
	m, err := l.Device.PowerOn(ctx)
	if err != nil {
		return nil, err
	}
	_, from, err := m.WaitFor(ctx, 0, installedRe)
	if err != nil {
		return nil, err
	}
	l.Timing("power on to installed, rebooting", m.Uptime())
	st, err := m.WaitStatus(ctx, from, func(s *Status) bool { return s.Update != nil })
	if err != nil {
		return nil, err
	}
	l.Timing("power on to the agent answering (from disk)", m.Uptime())
	var errs []error
	if st.Booted() != partitions.SlotA || !st.Slot(partitions.SlotA).OK || st.Diskless != nil {
		errs = append(errs, fmt.Errorf("boot from the installed disk: %s, want slot A booted and committed", st.Describe()))
	}
	if v := st.MeasuredVersion(); v != "1.0.0" {
		errs = append(errs, fmt.Errorf("measured release %q, want 1.0.0: %s", v, st.Describe()))
	}
	if err := checkInstalledTable(ctx, l.Device.Disk); err != nil {
		errs = append(errs, err)
	}
	node, err := l.K3s.WaitNode(ctx, func(n Node) bool { return n.Ready && n.Labels["cairn.dev/slot"] == "a" })
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	l.Timing("power on to the node Ready (from disk)", m.Uptime())
	l.Logf("node %s is Ready on the k3s server, slot A", node.Name)
	if err := l.verifyAttestation(ctx, m, from, "1.0.0", partitions.SlotA); err != nil {
		errs = append(errs, err)
	}
	if err := m.WaitBootFinished(ctx, from); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.0.0", Slot: "A", Result: "installed over the network, committed", Took: m.Uptime()}, errors.Join(errs...)
}

// checkInstalledTable reads the partition table cairn-init wrote: the state
// partition grown to the end of the disk, and sgdisk finds no problem.
func checkInstalledTable(ctx context.Context, diskPath string) error {
	parts, err := partitions.ReadTable(diskPath)
	if err != nil {
		return fmt.Errorf("installed disk: %w", err)
	}
	fi, err := os.Stat(diskPath)
	if err != nil {
		return err
	}
	// GPT keeps its backup header and entries in the last 33 sectors; the
	// layout aligns the end to 1 MiB below that.
	if last := parts[len(parts)-1]; last.Label != partitions.LabelState || last.LastLBA != uint64(fi.Size())/512-2048-1 {
		return fmt.Errorf("installed table ends with %s at sector %d, want %s to the end of the %d-byte disk", last.Label, last.LastLBA, partitions.LabelState, fi.Size())
	}
	out, err := exec.CommandContext(ctx, "sgdisk", "-v", diskPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found.") {
		return fmt.Errorf("sgdisk -v on the installed disk: %v\n%s", err, out)
	}
	return nil
}
