// Command guestinit is the /init of a vmtest guest: it mounts the kernel's
// file systems, loads the planned modules, runs the planned test binary and
// reports its exit code on the console before powering off.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/cairn-edge/cairn/tests/vmtest/internal/plan"
	"golang.org/x/sys/unix"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Printf("\nvmtest init: %v\n%sexit=-1 %v\n", err, plan.ResultPrefix, err)
	} else {
		fmt.Printf("\n%sexit=%d\n", plan.ResultPrefix, code)
	}
	os.Stdout.Sync()
	unix.Sync()
	// PID 1 must not exit: that panics the kernel. Power off instead; the
	// host stops QEMU on the result line should this fail.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("vmtest init: power off: %v\n", err)
	}
	select {}
}

func run() (int, error) {
	if err := mountKernelFS(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(plan.Path)
	if err != nil {
		return 0, fmt.Errorf("read plan: %w", err)
	}
	var p plan.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return 0, fmt.Errorf("plan %s: %w", plan.Path, err)
	}
	for _, m := range p.Modules {
		if err := loadModule(m); err != nil {
			return 0, err
		}
	}
	if len(p.Command) == 0 {
		return 0, fmt.Errorf("plan %s: no command", plan.Path)
	}
	cmd := exec.Command(p.Command[0], p.Command[1:]...)
	cmd.Dir, cmd.Env = p.Dir, p.Env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", p.Command[0], err)
	}
	return 0, nil
}

func mountKernelFS() error {
	for _, m := range []struct{ fstype, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"tmpfs", "/tmp"}, {"tmpfs", "/run"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: finit_module: %w", path, err)
	}
	return nil
}
