package rootfs

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/cairn-edge/cairn/images/initrd"
	"github.com/cairn-edge/cairn/images/kmod"
)

// Initramfs says what goes into the initramfs.
type Initramfs struct {
	// Init is the cairn-init binary for the board's architecture.
	Init []byte
	// ReleaseKeyPEM is the release public key slot footers are checked with.
	ReleaseKeyPEM []byte
	Board         string
	// ModulesDir is the kernel's /lib/modules/VERSION; Modules are loaded
	// from it with their dependencies, unless built in.
	ModulesDir string
	Modules    []string
}

// WriteInitramfs writes the uncompressed newc archive to file. The same
// inputs give the same bytes: records are sorted and carry no timestamps.
func WriteInitramfs(file string, in Initramfs) error {
	recs := map[string]cpio.Record{}
	add := func(r cpio.Record) { r.Name = cpio.Normalize(r.Name); recs[r.Name] = r }
	// The kernel opens /dev/console for init before anything is mounted.
	add(cpio.CharDev("dev/console", 0o600, 5, 1))
	for _, d := range []string{"proc", "sys", "run", "sysroot", "dev/mapper"} {
		add(cpio.Directory(d, 0o755))
	}
	addFile := func(name string, data []byte, perm uint64) {
		add(cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm}))
	}
	addFile("init", in.Init, 0o755)
	addFile(initrd.ReleaseKeyPath, in.ReleaseKeyPEM, 0o644)
	addFile(initrd.BoardPath, []byte(in.Board+"\n"), 0o644)
	mods, err := kmod.ResolveModules(in.ModulesDir, in.Modules)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	var list strings.Builder
	for _, m := range mods {
		name := "lib/modules/" + m.Name + ".ko"
		addFile(name, m.Data, 0o644)
		list.WriteString(name + "\n")
	}
	addFile(initrd.ModuleList, []byte(list.String()), 0o644)
	return writeArchive(file, recs)
}

// writeArchive writes recs sorted by name, each after its parent
// directories (the kernel makes none itself), through a temporary file.
func writeArchive(file string, recs map[string]cpio.Record) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	w := cpio.NewDedupWriter(cpio.Newc.Writer(bw))
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	written := map[string]bool{}
	for _, n := range names {
		var parents []string
		for d := path.Dir(n); d != "." && d != "/"; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if written[parents[i]] {
				continue
			}
			written[parents[i]] = true
			if err := w.WriteRecord(cpio.Directory(parents[i], 0o755)); err != nil {
				return fmt.Errorf("initramfs %s: %s: %w", file, parents[i], err)
			}
		}
		if written[n] {
			continue
		}
		written[n] = true
		if err := w.WriteRecord(recs[n]); err != nil {
			return fmt.Errorf("initramfs %s: %s: %w", file, n, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return fmt.Errorf("initramfs %s: trailer: %w", file, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	return os.Rename(tmp.Name(), file)
}
