package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ErrNoNetworkBoot means a machine was asked to boot over the network
// where its firmware has no network boot the scenarios use.
var ErrNoNetworkBoot = errors.New("no network boot on this machine")

// startVirt boots an arm64 board on QEMU's virt machine (Cortex-A57,
// software emulation) with the board's firmware as -bios (U-Boot, which
// runs boot.scr from the disk's CAIRN_BOOT). Disks, network card and
// random number generator are virtio-mmio devices, the transports U-Boot
// and the board's initramfs (virtio_mmio) both have; the network is
// QEMU's user network, as on x86 (the host is 10.0.2.2). The TPM is
// swtpm behind QEMU's tpm-tis-device, the only TPM the virt machine has,
// which the device drives with the tpm_tis.ko its root carries
// (boardModules; docs/e2e.md, "The arm64 device's TPM").
func startVirt(ctx context.Context, opts MachineOptions) (*Machine, error) {
	bios := opts.Board.MachineFirmware()
	switch {
	case bios == "":
		return nil, fmt.Errorf("board %s: no machine firmware to give QEMU as -bios", opts.Board.Name)
	case opts.TFTP != "":
		return nil, fmt.Errorf("board %s: %w", opts.Board.Name, ErrNoNetworkBoot)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	m := &Machine{opts: opts, console: &Console{tee: opts.Console}, exited: make(chan struct{})}
	tpm, err := m.startSwtpm(ctx, "tpm-tis-device")
	if err != nil {
		return nil, err
	}
	args := []string{"-accel", "tcg", "-M", "virt", "-cpu", "cortex-a57", "-m", fmt.Sprint(opts.Memory), "-smp", "1",
		"-nographic", "-no-user-config", "-nodefaults", "-serial", "stdio",
		"-bios", bios,
		"-netdev", opts.netdev(), "-device", "virtio-net-device,netdev=net0",
		"-device", "virtio-rng-device"}
	args = append(args, tpm...)
	// U-Boot and Linux number virtio-mmio disks from the last one given
	// to QEMU, and U-Boot's distro boot looks only at virtio 0: the disk
	// comes last (and is vda, as on x86).
	if opts.Seed != "" {
		args = append(args, "-drive", "if=none,id=seed,format=raw,readonly=on,file="+opts.Seed,
			"-device", "virtio-blk-device,drive=seed")
	}
	args = append(args, "-drive", "if=none,id=disk,format=raw,cache=unsafe,file="+opts.Disk,
		"-device", "virtio-blk-device,drive=disk")
	if err := m.launch("qemu-system-aarch64", args); err != nil {
		return nil, err
	}
	return m, nil
}
