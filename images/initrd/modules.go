package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModuleList is the file in the initramfs naming the kernel modules to load,
// one path per line relative to the initramfs root, dependencies first.
const ModuleList = "lib/modules/cairn-modules.list"

// ReadModuleList returns the module paths listed in the file at path; a
// missing file is an empty list (a kernel with everything built in).
func ReadModuleList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("module list: %w", err)
	}
	var mods []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			mods = append(mods, l)
		}
	}
	return mods, nil
}

// loadModules loads the listed modules in order; one already loaded or
// built in is fine.
func loadModules(root string) error {
	mods, err := ReadModuleList(filepath.Join(root, ModuleList))
	if err != nil {
		return err
	}
	for _, m := range mods {
		f, err := os.Open(filepath.Join(root, m))
		if err != nil {
			return fmt.Errorf("module %s: %w", m, err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("module %s: finit_module: %w", m, err)
		}
	}
	return nil
}
