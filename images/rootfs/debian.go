// Package rootfs builds the root filesystem tree of a Cairn slot: a minimal
// Debian bookworm from mmdebstrap, Cairn's binaries and files on top, and
// the initramfs with cairn-init as its /init.
package rootfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/internal/filelock"
)

// Suite is the Debian release every board's root is built from.
const Suite = "bookworm"

// BasePackages go into every root: systemd as init, the tools the agent and
// k3s call, and the ssh server for operators.
var BasePackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "ca-certificates", "iptables",
	"kmod", "openssh-server", "e2fsprogs",
	// Device accounts live in /var/lib/extrausers (docs/config.md).
	"libnss-extrausers", "tzdata",
}

// Sources turns the host's apt sources (sourcesDir is /etc/apt in use) into
// one-line entries for the Debian suites of Suite with the board's
// components, so that the root comes from the mirror apt already uses.
func Sources(aptDir string, components []string) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	files = append([]string{filepath.Join(aptDir, "sources.list")}, files...)
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // sources.list may be absent
		}
		var entries [][3]string // uri, suite, signed-by
		if strings.HasSuffix(f, ".sources") {
			entries = deb822Entries(string(data))
		} else if strings.HasSuffix(f, ".list") {
			entries = oneLineEntries(string(data))
		}
		for _, e := range entries {
			if e[1] != Suite && !strings.HasPrefix(e[1], Suite+"-") {
				continue
			}
			opt := ""
			if e[2] != "" {
				opt = "[signed-by=" + e[2] + "] "
			}
			line := fmt.Sprintf("deb %s%s %s %s", opt, e[0], e[1], strings.Join(components, " "))
			if !slices.Contains(out, line) {
				out = append(out, line)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("apt sources in %s: no deb entry for Debian %s", aptDir, Suite)
	}
	return out, nil
}

func deb822Entries(text string) [][3]string {
	var out [][3]string
	for _, stanza := range strings.Split(text, "\n\n") {
		f := map[string]string{}
		for _, l := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, " ") {
				f[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !slices.Contains(strings.Fields(f["types"]), "deb") || f["enabled"] == "no" {
			continue
		}
		for _, uri := range strings.Fields(f["uris"]) {
			for _, suite := range strings.Fields(f["suites"]) {
				out = append(out, [3]string{uri, suite, f["signed-by"]})
			}
		}
	}
	return out
}

func oneLineEntries(text string) [][3]string {
	var out [][3]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		signedBy := ""
		if strings.HasPrefix(fields[0], "[") {
			for len(fields) > 0 {
				opt := strings.Trim(fields[0], "[]")
				if v, ok := strings.CutPrefix(opt, "signed-by="); ok {
					signedBy = v
				}
				last := strings.HasSuffix(fields[0], "]")
				fields = fields[1:]
				if last {
					break
				}
			}
		}
		if len(fields) >= 2 {
			out = append(out, [3]string{fields[0], fields[1], signedBy})
		}
	}
	return out
}

// Debian is what mmdebstrap is asked for.
type Debian struct {
	Arch     string
	Packages []string
	Sources  []string
	// SourceDateEpoch is passed to mmdebstrap for its timestamps.
	SourceDateEpoch int64
}

// ForBoard is the Debian root a board needs, from the sources of aptDir.
func ForBoard(b *boards.Board, aptDir string, epoch int64) (Debian, error) {
	src, err := Sources(aptDir, b.Components)
	if err != nil {
		return Debian{}, err
	}
	pkgs := append(append(slices.Clone(BasePackages), b.KernelPackage), b.Packages...)
	return Debian{Arch: b.Arch, Packages: pkgs, Sources: src, SourceDateEpoch: epoch}, nil
}

// Key names the root: the same inputs give the same key.
func (d Debian) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "cairn-rootfs-v1\n%s\n%s\n%d\n%s\n", d.Arch, strings.Join(d.Packages, ","), d.SourceDateEpoch, strings.Join(d.Sources, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// Bootstrap returns a directory holding the Debian root, built with
// mmdebstrap (as root) into cacheDir/KEY/root unless already there, one
// process at a time. Callers copy it before changing anything.
func Bootstrap(ctx context.Context, d Debian, cacheDir string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cacheDir, d.Key())
	root := filepath.Join(dir, "root")
	// Tests of several packages may want the same root at once: one
	// builds, the others wait and find it done. The lock sits beside the
	// directory, which a build removes first.
	unlock, err := filelock.Lock(dir + ".lock")
	if err != nil {
		return "", fmt.Errorf("debian root: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		logf("debian root %s: cached", d.Key())
		return root, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("debian root: %w", err)
	}
	start := time.Now()
	args := []string{"--variant=minbase", "--arch=" + d.Arch, "--include=" + strings.Join(d.Packages, ","),
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		// Without its kernel hook initramfs-tools makes no initramfs, which
		// Install replaces anyway; under qemu-user-static (arm64 on an amd64
		// host) making it takes longer than the rest of the root.
		"--dpkgopt=path-exclude=/etc/kernel/postinst.d/initramfs-tools",
		"--format=directory", Suite, root}
	args = append(args, d.Sources...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", d.SourceDateEpoch))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mmdebstrap %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 3000))
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), []byte(strings.Join(args, " ")+"\n"), 0o644); err != nil {
		return "", err
	}
	logf("debian root %s: mmdebstrap %s took %v", d.Key(), d.Arch, time.Since(start).Round(time.Second))
	return root, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
