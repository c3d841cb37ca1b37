package vmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"

	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/tests/vmtest/internal/plan"
	"github.com/u-root/u-root/pkg/cpio"
)

const (
	guestInitPkg = "github.com/cairn-edge/cairn/tests/vmtest/guestinit"
	guestTestBin = "/init-test"
	guestPkgDir  = "/pkg"
)

// buildInitramfs compiles the guest's /init and g's test binary and packs
// them with g's modules, tools and testdata into the cpio file out.
func buildInitramfs(ctx context.Context, g Guest, k *Kernel, workDir, out string) error {
	initBin := filepath.Join(workDir, "init")
	if err := goBuild(ctx, g.Dir, "build", "-o", initBin, guestInitPkg); err != nil {
		return err
	}
	testBin := filepath.Join(workDir, "init-test")
	if err := goBuild(ctx, g.Dir, "test", "-c", "-o", testBin, "."); err != nil {
		return err
	}
	mods, err := kmod.ResolveModules(k.Modules, g.Modules)
	if err != nil {
		return err
	}

	r := newInitramfs()
	if err := r.addHostFile("init", initBin); err != nil {
		return err
	}
	if err := r.addHostFile(guestTestBin, testBin); err != nil {
		return err
	}
	p := plan.Plan{
		Command: []string{guestTestBin, "-test.v", "-test.run", g.Run, "-test.timeout", g.Timeout.String()},
		Dir:     guestPkgDir,
		Env:     append([]string{GuestEnv + "=1", "PATH=/bin", "HOME=/root", "TMPDIR=/tmp"}, g.Env...),
	}
	for _, m := range mods {
		name := path.Join("/lib/modules", m.Name+".ko")
		r.addFile(name, m.Data, 0o644)
		p.Modules = append(p.Modules, name)
	}
	for _, tool := range g.Tools {
		if err := r.addTool(tool); err != nil {
			return err
		}
	}
	if err := addFiles(r, g.Files); err != nil {
		return err
	}
	if err := addPackageDir(r, g.Dir); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	r.addFile(plan.Path, b, 0o644)
	return r.write(out)
}

// addFiles copies each host file or directory in files to its guest path.
func addFiles(r *initramfs, files map[string]string) error {
	for guest, src := range files {
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("guest file %s: %w", guest, err)
		}
		if fi.IsDir() {
			err = r.addTree(guest, src)
		} else {
			err = r.addHostFile(guest, src)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addPackageDir makes the guest's working directory, with the package's
// testdata as go test would see it.
func addPackageDir(r *initramfs, dir string) error {
	if dir == "" {
		dir = "."
	}
	testdata := filepath.Join(dir, "testdata")
	if _, err := os.Stat(testdata); errors.Is(err, os.ErrNotExist) {
		r.add(cpio.Directory(guestPkgDir, 0o755))
		return nil
	} else if err != nil {
		return fmt.Errorf("testdata: %w", err)
	}
	return r.addTree(path.Join(guestPkgDir, "testdata"), testdata)
}

// goBuild runs the go command in dir for a static linux/amd64 binary,
// with the flags make build uses, so the two share compiled packages.
func goBuild(ctx context.Context, dir, sub string, args ...string) error {
	args = append([]string{sub, "-trimpath", "-ldflags=-s -w"}, args...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v in %s: %w\n%s", args, dir, err, out)
	}
	return nil
}
