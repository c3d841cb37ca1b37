package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/agent/network"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/kmod"
)

// Kernel is the running kernel: sethostname on the calling thread's UTS
// namespace, /proc/sys of its network namespace, finit_module.
type Kernel struct {
	network.UTSHostname
}

// Sysctl reads /proc/sys/path.
func (Kernel) Sysctl(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	return string(b), err
}

// SetSysctl writes value to /proc/sys/path, in place: procfs files are
// not replaced, they take one write.
func (Kernel) SetSysctl(path, value string) error {
	f, err := os.OpenFile(filepath.Join("/proc/sys", path), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// KernelRelease is uname -r.
func (Kernel) KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// ModuleLoaded reports whether /sys/module/name exists.
func (Kernel) ModuleLoaded(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/module", name))
	return err == nil
}

// LoadModule loads an uncompressed module with finit_module, from a memfd
// since the module was decompressed in memory. A module loaded meanwhile
// is fine.
func (Kernel) LoadModule(m kmod.Module) error {
	fd, err := unix.MemfdCreate("kmod-"+m.Name, unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("module %s: memfd: %w", m.Name, err)
	}
	f := os.NewFile(uintptr(fd), m.Name)
	defer f.Close()
	if _, err := f.Write(m.Data); err != nil {
		return fmt.Errorf("module %s: memfd: %w", m.Name, err)
	}
	if err := unix.FinitModule(fd, "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: finit_module: %w", m.Name, err)
	}
	return nil
}

// loadModules loads the modules not loaded yet, with what they depend on,
// from /lib/modules/<uname -r> under Root.
func (h *Host) loadModules(names []string, acts *[]Action) error {
	var missing []string
	for _, n := range names {
		if !h.Sys.ModuleLoaded(strings.ReplaceAll(n, "-", "_")) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rel, err := h.Sys.KernelRelease()
	if err != nil {
		return fmt.Errorf("cairn.modules: %w", err)
	}
	mods, err := kmod.ResolveModules(h.path(filepath.Join("lib/modules", rel)), missing)
	if err != nil {
		return fmt.Errorf("cairn.modules: %w", err)
	}
	for _, m := range mods {
		if h.Sys.ModuleLoaded(m.Name) {
			continue
		}
		if err := h.Sys.LoadModule(m); err != nil {
			return fmt.Errorf("cairn.modules: %w", err)
		}
		*acts = append(*acts, Action{OpModule, m.Name})
	}
	return nil
}

// applySysctl writes the kernel parameters whose value differs, in name
// order.
func (h *Host) applySysctl(params map[string]cloudinit.Sysctl, acts *[]Action) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		want := string(params[k])
		path := SysctlPath(k)
		cur, err := h.Sys.Sysctl(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("cairn.sysctl %s: read /proc/sys/%s: %w", k, path, err))
			continue
		}
		if slices.Equal(strings.Fields(cur), strings.Fields(want)) {
			continue
		}
		if err := h.Sys.SetSysctl(path, want); err != nil {
			errs = append(errs, fmt.Errorf("cairn.sysctl %s: write %q to /proc/sys/%s: %w", k, want, path, err))
			continue
		}
		*acts = append(*acts, Action{OpSysctl, k + "=" + want})
	}
	return errors.Join(errs...)
}

// SysctlPath turns a sysctl name into its path under /proc/sys the way
// sysctl(8) does: when the first separator is '.', dots separate and a '/'
// stands for a literal dot (net.ipv4.conf.eth0/100.forwarding); when it is
// '/', slashes separate and dots are literal.
func SysctlPath(key string) string {
	i := strings.IndexAny(key, "./")
	if i < 0 || key[i] == '/' {
		return key
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, key)
}
