// Command cairn-init is /init of Cairn's initramfs: it checks and mounts the
// slot the bootloader chose and switches to systemd, or says why not and
// reboots (images/initrd). Booted from the network it runs a slot image from
// RAM or installs it onto a local disk.
package main

import (
	"context"
	"os"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/disk"
	"github.com/cairn-edge/cairn/images/initrd"
)

func install(ctx context.Context, b *boards.Board, device, slot, boot string, logf func(string, ...any)) error {
	return disk.WriteDevice(ctx, disk.DeviceOptions{Board: b, Device: device, SlotA: slot, BootImage: boot, Logf: logf})
}

func main() {
	c := initrd.Config{Console: os.Stderr, DeviceTimeout: 30 * time.Second, Install: install}
	err := initrd.Run(context.Background(), c)
	initrd.Fail(c.Console, err, 5*time.Second)
}
