package rootfs

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-edge/cairn/images/kmod"
)

// UpdatesDir is where out-of-tree modules go under lib/modules/<release>:
// depmod ranks it above the kernel package's own modules.
const UpdatesDir = "updates"

// TPMModules go into every initramfs whose kernel has them as modules, so
// that cairn-init finds /dev/tpm0 before it measures the slot: the TIS
// driver for memory-mapped TPMs (QEMU's tpm-tis-device; Debian's arm64
// kernel lacks it, a board adds it with --module), the SPI one and the CRB
// one. tpm_tis_core comes along as their dependency.
var TPMModules = []string{"tpm_tis", "tpm_tis_spi", "tpm_crb"}

// elfMachines are the ELF machines of the boards' Debian architectures.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// extraModule is an out-of-tree module file checked against the root's
// kernel.
type extraModule struct {
	file string
	name string
	data []byte
}

// kernelRelease is the root's kernel release: the one directory under
// lib/modules.
func kernelRelease(root string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "lib/modules/*"))
	if len(dirs) != 1 {
		return "", fmt.Errorf("root %s: want one directory in lib/modules, found %d", root, len(dirs))
	}
	return filepath.Base(dirs[0]), nil
}

// checkModules reads the module files and refuses any that the root's
// kernel would not load, before Install writes anything.
func checkModules(root, arch string, files []string) ([]extraModule, error) {
	if len(files) == 0 {
		return nil, nil
	}
	machine, ok := elfMachines[arch]
	if !ok {
		return nil, fmt.Errorf("kernel modules: no ELF machine known for architecture %q", arch)
	}
	release, err := kernelRelease(root)
	if err != nil {
		return nil, err
	}
	var out []extraModule
	seen := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("kernel module: %w", err)
		}
		info, err := kmod.Check(f, data, machine, release)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[info.Name]; dup {
			return nil, fmt.Errorf("kernel module %s: module %s is given twice (also %s)", f, info.Name, prev)
		}
		seen[info.Name] = f
		out = append(out, extraModule{file: f, name: info.Name, data: data})
	}
	return out, nil
}

// installModules puts the modules into lib/modules/<release>/updates and
// refreshes the root's module index with the host's depmod, which reads
// modules of any architecture.
func installModules(root string, mods []extraModule) error {
	if len(mods) == 0 {
		return nil
	}
	release, err := kernelRelease(root)
	if err != nil {
		return err
	}
	for _, m := range mods {
		dst := filepath.Join(root, "lib/modules", release, UpdatesDir, m.name+".ko")
		if err := writeFile(dst, m.data, 0o644); err != nil {
			return fmt.Errorf("kernel module %s: %w", m.file, err)
		}
	}
	depmod, err := exec.LookPath("depmod")
	if err != nil {
		// A user's PATH may lack /usr/sbin, where Debian puts it.
		depmod = "/usr/sbin/depmod"
		if _, serr := os.Stat(depmod); serr != nil {
			return fmt.Errorf("kernel modules: depmod not installed (Debian package kmod): %w", err)
		}
	}
	if out, err := exec.Command(depmod, "-b", root, release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod -b %s %s: %w\n%s", root, release, err, out)
	}
	return nil
}
