// Command cairn-init is /init of Cairn's initramfs: it checks and mounts the
// slot the bootloader chose and switches to systemd, or says why not and
// reboots (images/initrd).
package main

import (
	"context"
	"os"
	"time"

	"github.com/cairn-edge/cairn/images/initrd"
)

func main() {
	c := initrd.Config{Console: os.Stderr, DeviceTimeout: 30 * time.Second}
	err := initrd.Run(context.Background(), c)
	initrd.Fail(c.Console, err, 5*time.Second)
}
