// Package tpmtis builds tpm_tis.ko, the memory-mapped TIS TPM driver that
// Debian's arm64 kernel leaves out, for a Debian arm64 kernel release, so
// that an emulated arm64 device sees QEMU's tpm-tis-device.
//
// It uses Debian packages only: the release's arm64 headers (extracted with
// mmdebstrap from the mirror apt uses), the host's kbuild tools
// (linux-kbuild-6.1), the cross compiler Debian builds the kernel with
// (gcc-aarch64-linux-gnu) and drivers/char/tpm from linux-source-6.1.
package tpmtis

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/internal/filelock"
)

// ModuleFile is the name of the built module.
const ModuleFile = "tpm_tis.ko"

// CrossCompile is the prefix of the arm64 cross tools (gcc-aarch64-linux-gnu).
const CrossCompile = "aarch64-linux-gnu-"

// Build returns the path of tpm_tis.ko for the Debian arm64 kernel release
// (uname -r, e.g. "6.1.0-56-arm64"), built once and kept in
// cacheDir/tpm_tis/<release>; later calls, also from other processes,
// return the cached file. logf gets each step and its time.
func Build(ctx context.Context, release, cacheDir string, logf func(string, ...any)) (string, error) {
	series, err := kernelSeries(release)
	if err != nil {
		return "", err
	}
	base := filepath.Join(cacheDir, "tpm_tis")
	dir := filepath.Join(base, release)
	ko := filepath.Join(dir, ModuleFile)
	unlock, err := filelock.Lock(dir + ".lock")
	if err != nil {
		return "", fmt.Errorf("tpm_tis %s: %w", release, err)
	}
	defer unlock()
	if _, err := os.Stat(ko); err == nil {
		logf("tpm_tis %s: cached %s", release, ko)
		return ko, nil
	}
	tmp, err := os.MkdirTemp(base, ".build-")
	if err != nil {
		return "", fmt.Errorf("tpm_tis %s: %w", release, err)
	}
	defer os.RemoveAll(tmp)
	b := &build{ctx: ctx, release: release, series: series, tmp: tmp, logf: logf}
	out, err := b.run()
	if err != nil {
		return "", fmt.Errorf("tpm_tis %s: %w", release, err)
	}
	if err := os.Rename(out, dir); err != nil {
		return "", fmt.Errorf("tpm_tis %s: %w", release, err)
	}
	if d, err := os.Open(base); err == nil {
		d.Sync()
		d.Close()
	}
	return ko, nil
}

// kernelSeries is the "6.1" of "6.1.0-56-arm64", the suffix of Debian's
// linux-source and linux-kbuild package names; only arm64 flavours are
// built, since the cross compiler is aarch64's.
func kernelSeries(release string) (string, error) {
	if !strings.HasSuffix(release, "-arm64") {
		return "", fmt.Errorf("tpm_tis: kernel release %q is not a Debian arm64 flavour (…-arm64)", release)
	}
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 3 {
		return "", fmt.Errorf("tpm_tis: kernel release %q: want MAJOR.MINOR.PATCH-ABI-FLAVOUR", release)
	}
	return parts[0] + "." + parts[1], nil
}

type build struct {
	ctx                  context.Context
	release, series, tmp string
	logf                 func(string, ...any)
}

func (b *build) run() (string, error) {
	gcc := CrossCompile + "gcc-12"
	for tool, pkg := range map[string]string{"mmdebstrap": "mmdebstrap", "make": "make", "tar": "tar",
		gcc: "gcc-aarch64-linux-gnu", CrossCompile + "strip": "binutils-aarch64-linux-gnu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s not installed (Debian package %s, scripts/install-deps.sh)", tool, pkg)
		}
	}
	kbuild := "/usr/lib/linux-kbuild-" + b.series
	if _, err := os.Stat(filepath.Join(kbuild, "scripts", "mod", "modpost")); err != nil {
		return "", fmt.Errorf("host kbuild tools: %w (Debian package linux-kbuild-%s, scripts/install-deps.sh)", err, b.series)
	}
	sysroot := filepath.Join(b.tmp, "headers")
	if err := b.step("extract linux-headers-"+b.release, func() error {
		return b.extract(sysroot, "linux-headers-"+b.release)
	}); err != nil {
		return "", err
	}
	version, err := kernelVersion(sysroot, b.release)
	if err != nil {
		return "", err
	}
	tarball, err := b.sourceTarball(version)
	if err != nil {
		return "", err
	}
	src := filepath.Join(b.tmp, "src")
	if err := b.step("unpack drivers/char/tpm of "+filepath.Base(tarball), func() error {
		return b.unpackTPM(tarball, src)
	}); err != nil {
		return "", err
	}
	headers, err := useHostKbuild(sysroot, b.release, kbuild)
	if err != nil {
		return "", err
	}
	mod := filepath.Join(b.tmp, "module")
	if err := b.step("make tpm_tis.ko", func() error {
		return b.compile(headers, src, mod)
	}); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(mod, ModuleFile))
	if err != nil {
		return "", err
	}
	if _, err := kmod.Check(filepath.Join(mod, ModuleFile), data, elf.EM_AARCH64, b.release); err != nil {
		return "", err
	}
	// The cache entry holds the module alone; Build renames it into place.
	result := filepath.Join(b.tmp, "result")
	if err := os.Mkdir(result, 0o755); err != nil {
		return "", err
	}
	if err := writeSynced(filepath.Join(result, ModuleFile), data); err != nil {
		return "", err
	}
	return result, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (b *build) step(what string, fn func() error) error {
	start := time.Now()
	if err := fn(); err != nil {
		return err
	}
	b.logf("tpm_tis %s: %s: %v", b.release, what, time.Since(start).Round(time.Millisecond))
	return nil
}

// extract unpacks the arm64 packages (and what they depend on) into dir
// with mmdebstrap's extract variant: no maintainer scripts, no change to
// the host's apt configuration, the mirror apt already uses.
func (b *build) extract(dir string, packages ...string) error {
	sources, err := rootfs.Sources("/etc/apt", []string{"main"})
	if err != nil {
		return err
	}
	args := append([]string{"--variant=extract", "--architectures=arm64", "--include=" + strings.Join(packages, ","),
		"--format=directory", rootfs.Suite, dir}, sources...)
	cmd := exec.CommandContext(b.ctx, "mmdebstrap", args...)
	// mmdebstrap's own temporary files stay in the build directory.
	cmd.Env = append(os.Environ(), "TMPDIR="+b.tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mmdebstrap %s: %w\n%s", strings.Join(args, " "), err, tail(out))
	}
	return nil
}

// sourceTarball is linux-source-<series>'s tarball of the headers' Debian
// version: the host's when linux-source is installed at that version,
// otherwise that exact version extracted next to the headers.
func (b *build) sourceTarball(version string) (string, error) {
	pkg := "linux-source-" + b.series
	name := pkg + ".tar.xz"
	out, _ := exec.CommandContext(b.ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	host := strings.TrimSpace(string(out))
	if host == version {
		b.logf("tpm_tis %s: host's %s %s matches the headers", b.release, pkg, host)
		return filepath.Join("/usr/src", name), nil
	}
	b.logf("tpm_tis %s: host's %s is %q, the headers %s: fetching %s=%s", b.release, pkg, host, version, pkg, version)
	dir := filepath.Join(b.tmp, "source")
	if err := b.step("extract "+pkg+"="+version, func() error { return b.extract(dir, pkg+"="+version) }); err != nil {
		return "", err
	}
	return filepath.Join(dir, "usr/src", name), nil
}

func (b *build) unpackTPM(tarball, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(b.ctx, "tar", "-xJf", tarball, "-C", dst, "--strip-components=4",
		"--wildcards", "*/drivers/char/tpm/tpm_tis.c", "*/drivers/char/tpm/*.h")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tar -xJf %s: %w\n%s", tarball, err, tail(out))
	}
	return nil
}

// compile builds tpm_tis.ko from the driver sources in src into out and
// strips its debug information, as Debian's own modules are.
func (b *build) compile(headers, src, out string) error {
	if err := os.CopyFS(out, os.DirFS(src)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "Kbuild"), []byte("obj-m := tpm_tis.o\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(b.ctx, "make", "-C", headers, "M="+out, "ARCH=arm64", "CROSS_COMPILE="+CrossCompile, "modules")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make -C %s M=%s modules: %w\n%s", headers, out, err, tail(msg))
	}
	ko := filepath.Join(out, ModuleFile)
	if msg, err := exec.CommandContext(b.ctx, CrossCompile+"strip", "--strip-debug", ko).CombinedOutput(); err != nil {
		return fmt.Errorf("strip %s: %w\n%s", ko, err, msg)
	}
	return nil
}

// useHostKbuild makes the extracted headers usable where they lie: their
// Makefile includes the common headers by absolute /usr/src path, and their
// scripts and tools links point at the arm64 kbuild package, whose
// programs the host cannot run. Both are redirected inside sysroot; the
// host's /usr/src is never touched. It returns the headers directory.
func useHostKbuild(sysroot, release, kbuild string) (string, error) {
	src := filepath.Join(sysroot, "usr/src")
	headers := filepath.Join(src, "linux-headers-"+release)
	mf := filepath.Join(headers, "Makefile")
	data, err := os.ReadFile(mf)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	if !strings.Contains(string(data), "/usr/src/") {
		return "", fmt.Errorf("headers %s: no /usr/src include to redirect:\n%s", mf, data)
	}
	fixed := strings.ReplaceAll(string(data), "/usr/src/", src+"/")
	if err := os.WriteFile(mf, []byte(fixed), 0o644); err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	dirs, _ := filepath.Glob(filepath.Join(src, "linux-headers-*"))
	for _, d := range dirs {
		for _, link := range []string{"scripts", "tools"} {
			p := filepath.Join(d, link)
			if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := os.Remove(p); err != nil {
				return "", fmt.Errorf("headers: %w", err)
			}
			if err := os.Symlink(filepath.Join(kbuild, link), p); err != nil {
				return "", fmt.Errorf("headers: %w", err)
			}
		}
	}
	return headers, nil
}

// kernelVersion is the Debian version of the kernel the headers are for
// (what uname -v shows), from their generated package.h:
// #define LINUX_PACKAGE_ID " Debian 6.1.192-2". The extract variant records
// no packages in dpkg's status.
func kernelVersion(sysroot, release string) (string, error) {
	path := filepath.Join(sysroot, "usr/src/linux-headers-"+release, "include/generated/package.h")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "#define LINUX_PACKAGE_ID "); ok {
			f := strings.Fields(strings.Trim(v, `"`))
			if len(f) == 2 && f[0] == "Debian" {
				return f[1], nil
			}
		}
	}
	return "", fmt.Errorf("headers %s: no Debian LINUX_PACKAGE_ID", path)
}

func tail(b []byte) string {
	const n = 3000
	if len(b) <= n {
		return string(b)
	}
	return "..." + string(b[len(b)-n:])
}
