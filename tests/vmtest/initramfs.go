package vmtest

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"

	"github.com/u-root/u-root/pkg/cpio"
)

// initramfs is a guest root file system being assembled, written as a
// newc cpio archive the kernel unpacks into its rootfs.
type initramfs struct {
	recs map[string]cpio.Record
}

func newInitramfs() *initramfs {
	r := &initramfs{recs: map[string]cpio.Record{}}
	// The kernel opens /dev/console for init's stdin, stdout and stderr
	// before devtmpfs is mounted.
	r.add(cpio.CharDev("dev/console", 0o600, 5, 1))
	for _, d := range []string{"proc", "sys", "tmp", "run", "root", "bin"} {
		r.add(cpio.Directory(d, 0o755))
	}
	// iproute2 and vishvananda/netns keep named namespaces in /var/run/netns.
	r.add(cpio.Symlink("var/run", "../run"))
	return r
}

func (r *initramfs) add(rec cpio.Record) {
	rec.Name = cpio.Normalize(rec.Name)
	r.recs[rec.Name] = rec
}

func (r *initramfs) addFile(name string, data []byte, perm uint64) {
	r.add(cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm}))
}

// addHostFile copies the host file at src (following symlinks) to name.
func (r *initramfs) addHostFile(name, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", name, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", name, err)
	}
	r.addFile(name, data, uint64(fi.Mode().Perm()))
	return nil
}

// addTree copies the host directory src to dir, regular files and
// directories only.
func (r *initramfs) addTree(dir, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("initramfs %s: %w", dir, err)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dir, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			r.add(cpio.Directory(name, 0o755))
		case d.Type().IsRegular():
			return r.addHostFile(name, p)
		}
		return nil
	})
}

// addTool copies the host executable named tool (looked up in PATH and the
// sbin directories) to /bin, with its ELF interpreter and the shared
// libraries it needs, each at the path the host's loader finds it at.
func (r *initramfs) addTool(tool string) error {
	bin, err := lookTool(tool)
	if err != nil {
		return err
	}
	if err := r.addHostFile(path.Join("bin", path.Base(tool)), bin); err != nil {
		return err
	}
	return r.addLibraries(bin, map[string]bool{})
}

func lookTool(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("tool %s: not found in PATH, /usr/sbin or /sbin (scripts/install-deps.sh installs it)", tool)
}

// libraryDirs are the directories Debian's loader searches on amd64.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

func (r *initramfs) addLibraries(bin string, seen map[string]bool) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("tool %s: %w", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, err := bufio.NewReader(p.Open()).ReadString(0)
		if err != nil {
			return fmt.Errorf("tool %s: PT_INTERP: %w", bin, err)
		}
		interp = interp[:len(interp)-1]
		if !seen[interp] {
			seen[interp] = true
			if err := r.addHostFile(interp, interp); err != nil {
				return err
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("tool %s: DT_NEEDED: %w", bin, err)
	}
	for _, lib := range libs {
		if seen[lib] {
			continue
		}
		seen[lib] = true
		found := ""
		for _, dir := range libraryDirs {
			if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
				found = filepath.Join(dir, lib)
				break
			}
		}
		if found == "" {
			return fmt.Errorf("tool %s: shared library %s not found in %v", bin, lib, libraryDirs)
		}
		if err := r.addHostFile(found, found); err != nil {
			return err
		}
		if err := r.addLibraries(found, seen); err != nil {
			return err
		}
	}
	return nil
}

// write writes the archive to file, each record after its parent
// directories, as the kernel creates no missing directories.
func (r *initramfs) write(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := cpio.NewDedupWriter(cpio.Newc.Writer(bw))
	names := make([]string, 0, len(r.recs))
	for n := range r.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeParents(w, n); err != nil {
			return fmt.Errorf("initramfs %s: %s: %w", file, n, err)
		}
		if err := w.WriteRecord(r.recs[n]); err != nil {
			return fmt.Errorf("initramfs %s: %s: %w", file, n, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return fmt.Errorf("initramfs %s: trailer: %w", file, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	return f.Close()
}

func writeParents(w cpio.RecordWriter, name string) error {
	var parents []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		if err := w.WriteRecord(cpio.Directory(parents[i], 0o755)); err != nil {
			return err
		}
	}
	return nil
}
