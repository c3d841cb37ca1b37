// Command tpmguest is the /init of the TPM proof guest: it loads the
// kernel modules given in /modules in order, waits for the TPM character
// devices and reports what the kernel shows on the console before powering
// off.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ResultPrefix starts the line the host looks for; the rest is
// "ok key=value ..." or "fail reason".
const ResultPrefix = "TPMGUEST-RESULT: "

func main() {
	facts, err := run()
	if err != nil {
		fmt.Printf("\n%sfail %v\n", ResultPrefix, err)
	} else {
		fmt.Printf("\n%sok %s\n", ResultPrefix, facts)
	}
	os.Stdout.Sync()
	unix.Sync()
	// PID 1 must not exit: that panics the kernel.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("tpmguest: power off: %v\n", err)
	}
	select {}
}

func run() (string, error) {
	for _, m := range []struct{ fstype, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return "", err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil {
			return "", fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	// The host names the files 00-<name>.ko, 01-..., dependencies first.
	mods, err := filepath.Glob("/modules/*.ko")
	if err != nil {
		return "", err
	}
	sort.Strings(mods)
	for _, m := range mods {
		if err := load(m); err != nil {
			return "", err
		}
		fmt.Printf("tpmguest: loaded %s\n", m)
	}
	// The platform driver probes synchronously, but devtmpfs nodes can
	// trail it a little.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, e1 := os.Stat("/dev/tpm0")
		_, e2 := os.Stat("/dev/tpmrm0")
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no /dev/tpm0 and /dev/tpmrm0 (%v, %v)", e1, e2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	major, err := os.ReadFile("/sys/class/tpm/tpm0/tpm_version_major")
	if err != nil {
		return "", err
	}
	driver, err := os.Readlink("/sys/class/tpm/tpm0/device/driver")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("tpm_version_major=%s driver=%s dev=/dev/tpm0,/dev/tpmrm0",
		strings.TrimSpace(string(major)), filepath.Base(driver)), nil
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}
