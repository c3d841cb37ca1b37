// Command cairn-init is /init of Cairn's initramfs. Today it finds the slot
// the bootloader chose and its partition; verifying the slot footer,
// dm-verity, the TPM measurement, mounting root and /var and switch_root
// come with the image work (see README.md, status).
package main

import (
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/partitions"
)

func main() {
	if err := run("/"); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-init: %v\n", err)
		os.Exit(1)
	}
}

func run(root string) error {
	slot, err := partitions.CmdlineSlot(root)
	if err != nil {
		return err
	}
	dev, err := partitions.FindByLabel(root, slot.Label())
	if err != nil {
		return fmt.Errorf("slot %s: %w", slot, err)
	}
	fmt.Printf("cairn-init: slot %s is %s\n", slot, dev)
	return fmt.Errorf("slot %s: mounting root is not built yet", slot)
}
