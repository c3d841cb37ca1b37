// Package kmod finds a kernel's loadable modules and the modules they depend
// on, ready for finit_module, from the kernel's modules directory.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrNoModule means a requested kernel module is neither built into the
// kernel nor shipped as a file.
var ErrNoModule = errors.New("no such kernel module")

// Module is a kernel module ready for finit_module: uncompressed.
type Module struct {
	Name string
	Data []byte
}

// ResolveModules returns the named modules of the kernel whose modules
// directory is modDir, with every module they depend on, dependencies
// first, each once, decompressed. Built-in modules are left out. The
// dependencies come from each module's .modinfo section, since a kernel
// package ships no modules.dep (depmod writes it when installed).
func ResolveModules(modDir string, names []string) ([]Module, error) {
	files, err := moduleFiles(modDir)
	if err != nil {
		return nil, err
	}
	builtin, err := builtinModules(modDir)
	if err != nil {
		return nil, err
	}
	var out []Module
	done := map[string]bool{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = moduleName(name)
		if done[name] || builtin[name] {
			return nil
		}
		for _, c := range chain {
			if c == name {
				return fmt.Errorf("kernel modules %s: dependency cycle %s -> %s", modDir, strings.Join(chain, " -> "), name)
			}
		}
		path, ok := files[name]
		if !ok {
			return fmt.Errorf("kernel modules %s: %s: %w", modDir, name, ErrNoModule)
		}
		data, err := readModule(path)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(path, data)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		done[name] = true
		out = append(out, Module{Name: name, Data: data})
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// moduleName is the kernel's spelling: dashes and underscores are the same.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

var moduleExts = []string{".ko", ".ko.xz", ".ko.zst"}

// moduleDirs are the subdirectories of a modules directory that hold
// module files, in rising priority: as depmod's default search order has
// it, a module in updates/ (where out-of-tree modules go) wins over the
// kernel package's own of the same name.
var moduleDirs = []string{"kernel", "extra", "updates"}

func moduleFiles(modDir string) (map[string]string, error) {
	files := map[string]string{}
	for _, sub := range moduleDirs {
		top := filepath.Join(modDir, sub)
		err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil && path == top && sub != "kernel" && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			if err != nil || d.IsDir() {
				return err
			}
			for _, ext := range moduleExts {
				if base, ok := strings.CutSuffix(d.Name(), ext); ok {
					files[moduleName(base)] = path
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("kernel modules %s: %w", modDir, err)
		}
	}
	return files, nil
}

func builtinModules(modDir string) (map[string]bool, error) {
	path := filepath.Join(modDir, "modules.builtin")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	builtin := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		base := filepath.Base(strings.TrimSpace(sc.Text()))
		if name, ok := strings.CutSuffix(base, ".ko"); ok {
			builtin[moduleName(name)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel modules %s: %w", path, err)
	}
	return builtin, nil
}

// readModule returns the module file's contents, decompressed when Debian
// ships it compressed, so the guest needs no decompressor in its kernel.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel module: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("kernel module %s: xz: %w", path, err)
		}
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("kernel module %s: zstd: %w", path, err)
		}
		defer d.Close()
		r = d
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: read: %w", path, err)
	}
	return data, nil
}

// moduleDepends reads the depends= entry of the module's .modinfo section.
func moduleDepends(path string, data []byte) ([]string, error) {
	info, err := ReadInfo(path, data)
	if err != nil {
		return nil, err
	}
	return info.Depends, nil
}
