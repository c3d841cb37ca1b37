// Package k3stest starts k3s servers and agents for tests: a real k3s when
// K3S_BINARY names one, otherwise the k3s stand-in of tests/k3s-standin with
// the real kube-apiserver of tests/kube-apiserver, both built on first use
// and cached under the user cache directory, keyed by their sources.
package k3stest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/internal/filelock"
)

// BuildAPIServer builds tests/kube-apiserver (its own Go module) into
// CACHE/cairn/kube-apiserver-HASH/kube-apiserver, where HASH covers the
// module's go.mod, go.sum and sources and the Go version, and returns the
// path. A cached binary is returned at once; a cold build takes minutes, a
// rebuild with a warm Go build cache seconds.
func BuildAPIServer(ctx context.Context, repoRoot string) (string, error) {
	src := filepath.Join(repoRoot, "tests", "kube-apiserver")
	return buildCached(ctx, "kube-apiserver", src, ".", []string{src}, "kube-apiserver")
}

// BuildStandin builds the k3s stand-in (a package of the main module) into
// CACHE/cairn/k3s-standin-HASH/k3s and returns the path.
func BuildStandin(ctx context.Context, repoRoot string) (string, error) {
	src := filepath.Join(repoRoot, "tests", "k3s-standin")
	return buildCached(ctx, "k3s-standin", repoRoot, "./tests/k3s-standin",
		[]string{src, filepath.Join(repoRoot, "go.mod"), filepath.Join(repoRoot, "go.sum")}, "k3s")
}

// RepoRoot finds the main module's root from the working directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the cairn module")
	}
	return filepath.Dir(gomod), nil
}

func buildCached(ctx context.Context, name, dir, pkg string, inputs []string, binName string) (string, error) {
	key, err := hashInputs(inputs)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	outDir := filepath.Join(cache, "cairn", name+"-"+key[:16])
	out := filepath.Join(outDir, binName)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages may build at once: one builds, the
	// others wait on the lock and find the binary.
	unlock, err := filelock.Lock(filepath.Join(outDir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := out + ".tmp"
	// The build's work files stay next to the output: a long build should
	// not depend on nobody cleaning the shared temp directory meanwhile.
	work := filepath.Join(outDir, ".work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTMPDIR="+work)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return out, os.Rename(tmp, out)
}

// hashInputs hashes the Go version and every regular file (recursively,
// skipping _test.go and testdata) under the given paths.
func hashInputs(paths []string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	var files []string
	for _, p := range paths {
		err := filepath.Walk(p, func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if info.IsDir() && info.Name() == "testdata" {
				return filepath.SkipDir
			}
			if info.Mode().IsRegular() && !strings.HasSuffix(path, "_test.go") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	sort.Strings(files)
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, filepath.Base(f))
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildTimeout bounds a cold kube-apiserver build on a loaded 2-core machine.
const buildTimeout = 30 * time.Minute
