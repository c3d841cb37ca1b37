// Package e2e runs whole Cairn devices under QEMU for the end-to-end
// scenarios and `make demo`: it builds releases and disk images with the
// cairn command, serves the channel from the host, boots the device with
// firmware and a TPM emulator, and reads the device's own status from its
// serial console.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/boards"
)

// Firmware files of the qemu-x86_64 board (Debian package ovmf).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ErrMachineExited means QEMU stopped before the console showed what a
// caller waited for.
var ErrMachineExited = errors.New("machine exited")

// MachineOptions describe one device: its disks persist across boots (and
// power cuts); Start boots it once.
type MachineOptions struct {
	// Dir holds the device's firmware variables and TPM state; it must be
	// short enough for a Unix socket path inside it.
	Dir string
	// Disk is the device's raw disk image; Seed, optional, a CIDATA volume
	// attached as a second disk.
	Disk, Seed string
	// Memory in MiB; 0 means 1024.
	Memory int
	// Console, when set, sees the serial console as it arrives (the demo
	// shows it in the terminal).
	Console io.Writer
	// TFTP, when set, is a directory the user network serves over TFTP
	// and BootFile the file its DHCP offers: the network card keeps its
	// iPXE option ROM and boots when the disk has nothing to boot. The CPU
	// then has RDRAND, which the kernel trusts to seed its random number
	// generator at once (under TCG getrandom would block cairn-init's DHCP
	// client for minutes).
	TFTP, BootFile string
	// Forward makes guest TCP ports reachable on the host's loopback.
	Forward []Forward
	// Board selects the machine: nil or an amd64 board is the x86 machine
	// above; an arm64 board runs on QEMU's virt machine (startVirt).
	Board *boards.Board
}

// Forward is one guest TCP port reachable on the host at
// 127.0.0.1:Host (QEMU user networking's hostfwd).
type Forward struct{ Host, Guest int }

// netdev is the user network's -netdev value: QEMU's DHCP, its TFTP of
// o.TFTP offering o.BootFile when set, and the forwarded ports.
func (o MachineOptions) netdev() string {
	netdev := "user,id=net0"
	if o.TFTP != "" {
		netdev += ",tftp=" + o.TFTP + ",bootfile=" + o.BootFile
	}
	for _, f := range o.Forward {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.Host, f.Guest)
	}
	return netdev
}

// Machine is a running QEMU with its swtpm.
type Machine struct {
	opts    MachineOptions
	console *Console
	qemu    *exec.Cmd
	swtpm   *exec.Cmd
	exited  chan struct{}
	waitErr error
	started time.Time
}

// Start boots the device: swtpm on the state directory in Dir, then QEMU
// (software emulation, q35, OVMF, virtio disk and network with user-mode
// networking: the host is 10.0.2.2 to the guest). An arm64 board boots
// with startVirt instead.
func Start(ctx context.Context, opts MachineOptions) (*Machine, error) {
	if opts.Memory == 0 {
		opts.Memory = 1024
	}
	if opts.Board != nil && opts.Board.Arch == "arm64" {
		return startVirt(ctx, opts)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	vars := filepath.Join(opts.Dir, "OVMF_VARS.fd")
	if _, err := os.Stat(vars); errors.Is(err, os.ErrNotExist) {
		data, err := os.ReadFile(OVMFVars)
		if err != nil {
			return nil, fmt.Errorf("firmware variables: %w", err)
		}
		if err := os.WriteFile(vars, data, 0o600); err != nil {
			return nil, err
		}
	}
	m := &Machine{opts: opts, console: &Console{tee: opts.Console}, exited: make(chan struct{})}
	tpm, err := m.startSwtpm(ctx, "tpm-tis")
	if err != nil {
		return nil, err
	}
	nic := "virtio-net-pci,netdev=net0,romfile="
	if opts.TFTP != "" {
		nic = "virtio-net-pci,netdev=net0,bootindex=2"
	}
	args := []string{"-accel", "tcg", "-M", "q35", "-m", fmt.Sprint(opts.Memory), "-smp", "1",
		"-nographic", "-no-user-config", "-nodefaults", "-serial", "stdio",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", "if=none,id=disk,format=raw,cache=unsafe,file=" + opts.Disk,
		"-device", "virtio-blk-pci,drive=disk,bootindex=1",
		"-netdev", opts.netdev(), "-device", nic,
		"-device", "virtio-rng-pci"}
	args = append(args, tpm...)
	if opts.TFTP != "" {
		args = append(args, "-cpu", "max")
	}
	if opts.Seed != "" {
		args = append(args, "-drive", "if=none,id=seed,format=raw,readonly=on,file="+opts.Seed,
			"-device", "virtio-blk-pci,drive=seed")
	}
	if err := m.launch("qemu-system-x86_64", args); err != nil {
		return nil, err
	}
	return m, nil
}

// launch starts QEMU as name with args, its serial console going to the
// machine's console; swtpm, if any, stops when QEMU does.
func (m *Machine) launch(name string, args []string) error {
	m.qemu = exec.Command(name, args...)
	m.qemu.Stdout, m.qemu.Stderr = m.console, m.console
	m.qemu.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.started = time.Now()
	if err := m.qemu.Start(); err != nil {
		m.stopSwtpm()
		return fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		m.waitErr = m.qemu.Wait()
		m.stopSwtpm()
		close(m.exited)
	}()
	return nil
}

// Console is the serial console seen so far.
func (m *Machine) Console() *Console { return m.console }

// Uptime is the time since QEMU started.
func (m *Machine) Uptime() time.Duration { return time.Since(m.started) }

// Kill cuts the power: QEMU gets SIGKILL, nothing in the guest is flushed.
func (m *Machine) Kill() {
	if m.qemu.Process != nil {
		_ = m.qemu.Process.Kill()
	}
	<-m.exited
}

// Exited is closed once QEMU has stopped.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// startSwtpm starts the machine's TPM, swtpm with its state in Dir/tpm,
// and returns QEMU's arguments for it as the device model device
// (tpm-tis on q35, tpm-tis-device on virt).
func (m *Machine) startSwtpm(ctx context.Context, device string) ([]string, error) {
	dir := filepath.Join(m.opts.Dir, "tpm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "s")
	_ = os.Remove(sock)
	m.swtpm = exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir=.",
		"--ctrl", "type=unixio,path=s", "--flags", "startup-clear")
	m.swtpm.Dir = dir
	m.swtpm.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var tpmLog bytes.Buffer
	m.swtpm.Stdout, m.swtpm.Stderr = &tpmLog, &tpmLog
	if err := m.swtpm.Start(); err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	if err := waitForFile(ctx, sock, 10*time.Second); err != nil {
		m.stopSwtpm()
		return nil, fmt.Errorf("swtpm socket %s: %w: %s", sock, err, tpmLog.String())
	}
	return []string{"-chardev", "socket,id=chrtpm,path=" + sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", device + ",tpmdev=tpm0"}, nil
}

func (m *Machine) stopSwtpm() {
	if m.swtpm != nil && m.swtpm.Process != nil {
		_ = m.swtpm.Process.Kill()
		_ = m.swtpm.Wait()
	}
}

// WaitFor waits until the console, from byte offset from on, matches re,
// and returns the submatches and the offset just after the match.
func (m *Machine) WaitFor(ctx context.Context, from int, re *regexp.Regexp) ([]string, int, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		text := m.console.String()
		if from < len(text) {
			if loc := re.FindStringSubmatchIndex(text[from:]); loc != nil {
				var subs []string
				for i := 0; i < len(loc); i += 2 {
					s := ""
					if loc[i] >= 0 {
						s = text[from+loc[i] : from+loc[i+1]]
					}
					subs = append(subs, s)
				}
				return subs, from + loc[1], nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, from, fmt.Errorf("waiting for %q on the console: %w", re, ctx.Err())
		case <-m.exited:
			if text := m.console.String(); re.MatchString(text[min(from, len(text)):]) {
				continue
			}
			return nil, from, fmt.Errorf("waiting for %q: %w (%v)", re, ErrMachineExited, m.waitErr)
		case <-tick.C:
		}
	}
}

// Console collects the serial console output, without carriage returns.
type Console struct {
	mu  sync.Mutex
	buf strings.Builder
	tee io.Writer
}

func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(bytes.ReplaceAll(p, []byte("\r"), nil))
	if c.tee != nil {
		_, _ = c.tee.Write(p)
	}
	return len(p), nil
}

// String is everything the console showed so far.
func (c *Console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// Len is the console's length so far, an offset for WaitFor.
func (c *Console) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Len()
}

// Excerpt is the first head and the last tail bytes of the console, for
// failure messages: the boot (firmware, kernel, cairn-init) and how it
// ended.
func (c *Console) Excerpt(head, tail int) string {
	s := c.String()
	if len(s) <= head+tail {
		return s
	}
	return s[:head] + "\n...\n" + s[len(s)-tail:]
}

func waitForFile(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not there after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
