package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KernelMetapackage is the Debian package whose current dependency is the
// guest kernel: the cloud flavour boots fast and has 8021q, bonding, veth
// and network namespaces.
const KernelMetapackage = "linux-image-cloud-amd64"

// Kernel is a Debian kernel package unpacked in the cache.
type Kernel struct {
	Package string // versioned package, e.g. linux-image-6.1.0-56-cloud-amd64
	Version string // Debian version of Package
	Release string // uname -r, the directory under lib/modules
	Image   string // path of the bzImage
	Modules string // path of lib/modules/<Release>
}

// DebianKernel returns the kernel KernelMetapackage currently depends on,
// fetched with apt-get download from the configured Debian archive and
// unpacked with dpkg-deb under cacheDir once per package version. When apt
// knows no such package, or its lists name a version the archive no longer
// has, it runs apt-get update once and tries again. Concurrent callers are
// safe: each unpacks into a temporary directory and the first rename wins.
func DebianKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	k, err := debianKernel(ctx, cacheDir)
	if err == nil || ctx.Err() != nil {
		return k, err
	}
	if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
		return nil, fmt.Errorf("%w (and apt-get update: %v\n%s)", err, uerr, out)
	}
	return debianKernel(ctx, cacheDir)
}

func debianKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	name, err := aptDependency(ctx, KernelMetapackage, "linux-image-")
	if err != nil {
		return nil, err
	}
	version, err := aptVersion(ctx, name)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(cacheDir, name+"_"+version)
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		if err := fetchKernel(ctx, cacheDir, name, version, root); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", root, err)
	}
	return unpackedKernel(root, name, version)
}

func fetchKernel(ctx context.Context, cacheDir, name, version, root string) error {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("kernel cache %s: %w", cacheDir, err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-")
	if err != nil {
		return fmt.Errorf("kernel cache %s: %w", cacheDir, err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.CommandContext(ctx, "apt-get", "download", "-q", name+"="+version)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s=%s: %w\n%s", name, version, err, out)
	}
	debs, err := filepath.Glob(filepath.Join(tmp, name+"_*.deb"))
	if err != nil || len(debs) != 1 {
		return fmt.Errorf("apt-get download %s=%s: want one .deb in %s, found %v", name, version, tmp, debs)
	}
	unpacked := filepath.Join(tmp, "root")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	if err := os.Rename(unpacked, root); err != nil {
		if _, statErr := os.Stat(root); statErr == nil {
			return nil // another test process unpacked the same version first
		}
		return fmt.Errorf("kernel cache %s: %w", root, err)
	}
	return nil
}

func unpackedKernel(root, name, version string) (*Kernel, error) {
	images, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(images) != 1 {
		return nil, fmt.Errorf("kernel %s: want one boot/vmlinuz-*, found %v", root, images)
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	mods := filepath.Join(root, "lib", "modules", release)
	if _, err := os.Stat(mods); err != nil {
		return nil, fmt.Errorf("kernel %s: modules: %w", root, err)
	}
	return &Kernel{Package: name, Version: version, Release: release, Image: images[0], Modules: mods}, nil
}

// aptDependency returns the first dependency of pkg's candidate version
// whose name starts with prefix.
func aptDependency(ctx context.Context, pkg, prefix string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w", pkg, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if ok && strings.HasPrefix(dep, prefix) {
			return dep, nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no dependency named %s*:\n%s", pkg, prefix, out)
}

// aptVersion returns the candidate version of pkg.
func aptVersion(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("apt-cache show %s: no Version field", pkg)
}
