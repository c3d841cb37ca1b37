package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/internal/filelock"
	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// Epoch is the SOURCE_DATE_EPOCH of every e2e build (the one images/disk's
// tests use, so both share the cached Debian root).
const Epoch = 1735689600

// The PXE bundle is built for PXEBuildURL; a test serves it elsewhere and
// renders its iPXE scripts for that address (scenario_pxe.go). Its
// install.ipxe installs onto PXEInstallDisk, the machine's first disk.
const (
	PXEBuildURL    = "http://" + GuestHost + "/"
	PXEInstallDisk = "/dev/vda"
)

// BuildOptions say what to build.
type BuildOptions struct {
	Board    string    // e.g. qemu-x86_64
	Releases []Release // built in order; the first goes into slot A of the disk
	// CacheDir holds finished builds by key; "" means
	// os.UserCacheDir()/cairn/e2e.
	CacheDir string
	// WorkDir is a scratch directory for the binaries (a test's TempDir).
	WorkDir string
	// LocalServer puts kube-apiserver next to the k3s stand-in in the
	// root, so that a device with role server runs its cluster itself,
	// and builds no PXE bundle. The binary is the one the host's k3s
	// server runs (k3stest.BuildAPIServer), built for this machine: only
	// for an amd64 board.
	LocalServer bool
	Logf        func(format string, args ...any)
}

// Artifacts are the built, cached, read-only inputs of a scenario family.
type Artifacts struct {
	Dir      string // the cache entry
	Board    *boards.Board
	Cairn    string // the cairn command for this host
	Repo     string // the channel repository made by keys init (copy it before publishing)
	Releases string // the release directory release create wrote to
	Disk     string // raw disk image, slot A = Releases[0], B empty
	// PXE is the network boot bundle of Releases[0] (cairn image pxe),
	// built for PXEBuildURL, its install.ipxe installing onto
	// PXEInstallDisk; "" for a board without one (HasPXE).
	PXE      string
	Versions []string
	Took     time.Duration // 0 when found in the cache
}

// Build builds (or finds in the cache) the releases and the disk image.
// The cache key covers the binaries built from this tree, the board, the
// Debian root's inputs and the release recipes, so a change to any of them
// builds again.
func Build(ctx context.Context, opts BuildOptions) (*Artifacts, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	start := time.Now()
	b, err := boards.Load(opts.Board)
	if err != nil {
		return nil, err
	}
	src, err := k3stest.RepoRoot()
	if err != nil {
		return nil, err
	}
	bins := filepath.Join(opts.WorkDir, "bin")
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return nil, err
	}
	if err := buildBinaries(ctx, src, bins, b.Arch); err != nil {
		return nil, err
	}
	apiserver := ""
	if opts.LocalServer {
		if b.Arch != runtime.GOARCH {
			return nil, fmt.Errorf("board %s: a local k3s server needs kube-apiserver for %s, built here for %s", b.Name, b.Arch, runtime.GOARCH)
		}
		if apiserver, err = k3stest.BuildAPIServer(ctx, src); err != nil {
			return nil, err
		}
	}
	modules, err := boardModules(ctx, b, logf)
	if err != nil {
		return nil, err
	}
	logf("binaries built in %v", time.Since(start).Round(time.Millisecond))
	key, err := cacheKey(bins, append(modules, apiserver), b, opts.Releases)
	if err != nil {
		return nil, err
	}
	cache := opts.CacheDir
	if cache == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		cache = filepath.Join(uc, "cairn", "e2e")
	}
	dir := filepath.Join(cache, b.Name+"-"+key[:16])
	a := &Artifacts{Dir: dir, Board: b, Cairn: filepath.Join(dir, "bin", "cairn"), Repo: filepath.Join(dir, "repo"),
		Releases: filepath.Join(dir, "releases"), Disk: filepath.Join(dir, "disk.img"), PXE: filepath.Join(dir, "pxe")}
	if !HasPXE(b) || opts.LocalServer {
		a.PXE = ""
	}
	for _, r := range opts.Releases {
		a.Versions = append(a.Versions, r.Version)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if err := pruneCache(cache, dir, CacheTTL, time.Now(), logf); err != nil {
			logf("release artifacts cache: %v", err)
		}
	}()
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		logf("release artifacts for %s: cached in %s", b.Name, dir)
		return a, touchEntry(dir, time.Now())
	}
	work := filepath.Join(dir, "work")
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	bb := &builder{ctx: ctx, cairn: filepath.Join(bins, "cairn"), board: b, work: work, logf: logf,
		apiserver: apiserver, modules: modules, pxe: a.PXE != ""}
	if err := bb.build(bins, opts.Releases); err != nil {
		return nil, fmt.Errorf("e2e build %s: %w", dir, err)
	}
	for _, name := range []string{"repo", "releases", "disk.img", "pxe", "bin"} {
		_ = os.RemoveAll(filepath.Join(dir, name))
		if name == "pxe" && a.PXE == "" {
			continue
		}
		if name == "bin" {
			if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
				return nil, err
			}
			if err := copyFile(filepath.Join(bins, "cairn"), a.Cairn, 0o755); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.Rename(filepath.Join(work, name), filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
		return nil, err
	}
	a.Took = time.Since(start)
	logf("release artifacts for %s built in %v", b.Name, a.Took.Round(time.Second))
	return a, nil
}

// HasPXE reports whether the board gets a PXE bundle: the firmware's
// iPXE boots it, and of the boards only OVMF's UEFI has one; U-Boot
// boards boot from their disk.
func HasPXE(b *boards.Board) bool { return b.Bootloader == boards.UEFIGrub }

// buildBinaries builds cairn for the host and cairn-agent, cairn-init and
// the k3s stand-in for the device, static, as make build does.
func buildBinaries(ctx context.Context, src, out, arch string) error {
	for _, t := range []struct{ name, pkg, goarch string }{
		{"cairn", "./cmd/cairn", ""},
		{"cairn-agent", "./cmd/cairn-agent", arch},
		{"cairn-init", "./cmd/cairn-init", arch},
		{"k3s", "./tests/k3s-standin", arch},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, t.name), t.pkg)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if t.goarch != "" {
			cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+t.goarch)
		}
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", t.pkg, err, msg)
		}
	}
	return nil
}

// cacheKey hashes what the artifacts are built from; extra are files that
// go into the root besides the binaries ("" for none).
func cacheKey(bins string, extra []string, b *boards.Board, releases []Release) (string, error) {
	h := sha256.New()
	deb, err := rootfs.ForBoard(b, "/etc/apt", Epoch)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "board %+v\ndebian %s\npxe %s %s\n", *b, deb.Key(), PXEBuildURL, PXEInstallDisk)
	for _, r := range releases {
		fmt.Fprintf(h, "release %s %s\n", r.Version, r.Kind)
		for _, f := range r.overlay() {
			fmt.Fprintf(h, "%s %o %q\n", f.path, f.mode, f.data)
		}
	}
	var files []string
	for _, name := range []string{"cairn", "cairn-agent", "cairn-init", "k3s"} {
		files = append(files, filepath.Join(bins, name))
	}
	for _, path := range extra {
		if path != "" {
			files = append(files, path)
		}
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, filepath.Base(path))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// builder runs the cairn command the way a release engineer does.
type builder struct {
	ctx   context.Context
	cairn string
	board *boards.Board
	work  string
	logf  func(string, ...any)
	// apiserver, when set, goes into the root next to the stand-in.
	apiserver string
	// modules are out-of-tree kernel modules for the root (boardModules).
	modules []string
	pxe     bool // build the PXE bundle
}

func (b *builder) build(bins string, releases []Release) error {
	if len(releases) == 0 {
		return errors.New("no releases to build")
	}
	repo, root := filepath.Join(b.work, "repo"), filepath.Join(b.work, "root")
	if _, err := b.run("keys", "init", repo); err != nil {
		return err
	}
	if _, err := b.run("keys", "release-key", "--repo", repo); err != nil {
		return err
	}
	start := time.Now()
	args := []string{"image", "rootfs", "--board", b.board.Name,
		"--agent", filepath.Join(bins, "cairn-agent"), "--init", filepath.Join(bins, "cairn-init"),
		"--k3s", filepath.Join(bins, "k3s"),
		"--release-public-key", filepath.Join(repo, "release-key.pub"),
		"--tuf-root", filepath.Join(repo, "repository", "root.json"),
		"--source-date-epoch", fmt.Sprint(Epoch), "--out", root}
	for _, m := range b.modules {
		args = append(args, "--module", m)
	}
	_, err := b.run(args...)
	if err != nil {
		return err
	}
	if b.apiserver != "" {
		if err := copyFile(b.apiserver, filepath.Join(root, "usr", "local", "bin", "kube-apiserver"), 0o755); err != nil {
			return err
		}
	}
	b.logf("root tree for %s in %v", b.board.Name, time.Since(start).Round(time.Millisecond))
	slots := filepath.Join(b.work, "slots")
	if err := os.MkdirAll(slots, 0o755); err != nil {
		return err
	}
	for _, r := range releases {
		start := time.Now()
		if err := r.apply(root, filepath.Join(b.work, "initrd.pristine")); err != nil {
			return fmt.Errorf("release %s: %w", r.Version, err)
		}
		img := filepath.Join(slots, r.Version+".img")
		out, err := b.run("slot", "build", "--output", "json", "--root", root, "--out", img,
			"--slot-size", fmt.Sprint(b.board.SlotSize), "--release-key", filepath.Join(repo, "keys", "release.key"),
			"--version", r.Version, "--board", b.board.Name, "--arch", b.board.Arch,
			"--source-date-epoch", fmt.Sprint(Epoch), "--notes", r.Notes())
		if err != nil {
			return err
		}
		var built struct {
			RootHash string `json:"verity_root_hash"`
		}
		if err := json.Unmarshal(out, &built); err != nil || built.RootHash == "" {
			return fmt.Errorf("slot build %s: no root hash in %s (%v)", r.Version, out, err)
		}
		if _, err := b.run("release", "create", "--image", img, "--version", r.Version, "--board", b.board.Name,
			"--arch", b.board.Arch, "--releases", filepath.Join(b.work, "releases"),
			"--verity-root-hash", built.RootHash, "--notes", r.Notes()); err != nil {
			return err
		}
		b.logf("release %s (%s) built in %v", r.Version, r.Kind, time.Since(start).Round(time.Millisecond))
	}
	start = time.Now()
	if _, err := b.run("image", "build", "--board", b.board.Name, "--slot", filepath.Join(slots, releases[0].Version+".img"),
		"--out", filepath.Join(b.work, "disk.img"), "--no-zstd"); err != nil {
		return err
	}
	b.logf("disk image with %s in slot A built in %v", releases[0].Version, time.Since(start).Round(time.Millisecond))
	if b.pxe {
		start = time.Now()
		if _, err := b.run("image", "pxe", "--board", b.board.Name, "--slot", filepath.Join(slots, releases[0].Version+".img"),
			"--out", filepath.Join(b.work, "pxe"), "--base-url", PXEBuildURL, "--install-disk", PXEInstallDisk); err != nil {
			return err
		}
		b.logf("PXE bundle of %s built in %v", releases[0].Version, time.Since(start).Round(time.Millisecond))
	}
	for _, d := range []string{slots, root} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// run runs the cairn command and returns its standard output.
func (b *builder) run(args ...string) ([]byte, error) {
	cmd := exec.CommandContext(b.ctx, b.cairn, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", Epoch))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("cairn %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return stdout.Bytes(), nil
}

// lockDir takes an exclusive lock on dir (made if missing), so that two
// test processes building the same key wait for each other.
func lockDir(dir string) (func(), error) { return filelock.Lock(filepath.Join(dir, ".lock")) }

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
