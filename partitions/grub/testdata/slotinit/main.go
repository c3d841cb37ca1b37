// Command slotinit is the /init of the tiny initramfs the bootloader tests
// put in each slot: it prints which slot the bootloader said it booted and
// which slot's initramfs it is, then powers the machine off.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	slot := "none"
	if err := os.MkdirAll("/proc", 0o755); err == nil {
		_ = syscall.Mount("proc", "/proc", "proc", 0, "")
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fmt.Printf("slotinit: %v\n", err)
	}
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "cairn.slot="); ok {
			slot = v
		}
	}
	from, err := os.ReadFile("/slot")
	if err != nil {
		fmt.Printf("slotinit: %v\n", err)
	}
	fmt.Printf("\nCAIRN-SLOTINIT cmdline=%s initrd=%s\n", slot, strings.TrimSpace(string(from)))
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
