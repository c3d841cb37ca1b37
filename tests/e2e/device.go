package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"

	"github.com/cairn-edge/cairn/boards"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// Device is one emulated box: its own copy of the disk image, its TPM
// state and firmware variables, and the CIDATA seed it boots with. It
// outlives the QEMU processes that run it, as a box outlives power cuts.
type Device struct {
	Dir, Disk, Seed string
	// Console, when set, sees every boot's serial console.
	Console io.Writer
	// Machine is the running (or last) QEMU.
	Machine *Machine
	// Memory, TFTP and BootFile go to MachineOptions: a device booting
	// over the network sets them.
	Memory         int
	TFTP, BootFile string
	// Forward goes to MachineOptions: guest ports the host reaches.
	Forward []Forward
	// Board picks the machine (MachineOptions.Board); nil is the x86 one.
	Board *boards.Board
}

// DeviceConfig is what the device's user-data says.
type DeviceConfig struct {
	ChannelURL string // the repository as the guest sees it
	Channel    string // e.g. stable
	// K3sServer and K3sToken make the device a k3s agent joining that
	// server; an empty K3sServer runs a k3s server on the device, with
	// K3sToken as its cluster token if set.
	K3sServer, K3sToken string
	BootTries           int
	HealthDeadline      string // e.g. 3m
}

var userDataTemplate = template.Must(template.New("user-data").Parse(`#cloud-config
hostname: cairn-e2e
cairn:
  update:
    channel: {{.Channel}}
    metadata_url: {{.ChannelURL}}
    reboot_policy: immediate
    boot_tries: {{.BootTries}}
  k3s:
{{- if .K3sServer}}
    role: agent
    server: {{.K3sServer}}
    token: {{.K3sToken}}
{{- else}}
    role: server
{{- if .K3sToken}}
    token: {{.K3sToken}}
{{- end}}
{{- end}}
  health:
    deadline: {{.HealthDeadline}}
`))

// UserData renders the device's #cloud-config and validates it the way the
// agent does.
func (c DeviceConfig) UserData() ([]byte, error) {
	var b bytes.Buffer
	if err := userDataTemplate.Execute(&b, c); err != nil {
		return nil, err
	}
	if _, err := cloudinit.ParseUserData("user-data", b.Bytes()); err != nil {
		return nil, fmt.Errorf("e2e user-data: %w\n%s", err, b.Bytes())
	}
	return b.Bytes(), nil
}

// NewDevice makes a device in dir from the artifacts' disk image (a sparse
// copy) with a seed pointing at ch.
func NewDevice(ctx context.Context, art *Artifacts, ch *Channel, dir string, cfg DeviceConfig) (*Device, error) {
	d := &Device{Dir: dir, Disk: filepath.Join(dir, "disk.img"), Seed: filepath.Join(dir, "seed.img"), Board: art.Board}
	if msg, err := exec.CommandContext(ctx, "cp", "--sparse=always", art.Disk, d.Disk).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy disk %s: %w: %s", art.Disk, err, msg)
	}
	if err := d.writeSeed(ctx, ch, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// NewEmptyDevice makes a device in dir whose disk is size bytes of zeros
// (sparse), as a box fresh from the factory, with a seed pointing at ch.
func NewEmptyDevice(ctx context.Context, ch *Channel, dir string, size int64, cfg DeviceConfig) (*Device, error) {
	d := &Device{Dir: dir, Disk: filepath.Join(dir, "disk.img"), Seed: filepath.Join(dir, "seed.img")}
	f, err := os.OpenFile(d.Disk, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("empty disk %s: %w", d.Disk, err)
	}
	if err := d.writeSeed(ctx, ch, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Device) writeSeed(ctx context.Context, ch *Channel, cfg DeviceConfig) error {
	ud, err := cfg.UserData()
	if err != nil {
		return err
	}
	if err := ch.Seed(ctx, d.Seed, ud, "cairn-e2e"); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// PowerOn starts QEMU on the device's disks.
func (d *Device) PowerOn(ctx context.Context) (*Machine, error) {
	m, err := Start(ctx, MachineOptions{Dir: filepath.Join(d.Dir, "m"), Disk: d.Disk, Seed: d.Seed, Console: d.Console,
		Memory: d.Memory, TFTP: d.TFTP, BootFile: d.BootFile, Forward: d.Forward, Board: d.Board})
	if err != nil {
		return nil, err
	}
	d.Machine = m
	return m, nil
}

// PowerOff cuts the power of the running machine, if any.
func (d *Device) PowerOff() {
	if d.Machine != nil {
		d.Machine.Kill()
	}
}
