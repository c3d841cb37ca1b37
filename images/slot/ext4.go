package slot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// mke2fsConfig pins every mkfs default, so that the host's
// /etc/mke2fs.conf cannot change the filesystem. No journal: the root is
// read-only under dm-verity. The features are those GRUB 2.06's ext2 driver
// and U-Boot's ext4load both read (no inline_data, no metadata_csum_seed,
// no largedir).
const mke2fsConfig = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 0

[fs_types]
	ext4 = {
		features = extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// errNoSpace marks mkfs failing because the tree does not fit.
var errNoSpace = errors.New("root directory does not fit the filesystem")

// makeExt4 writes an ext4 filesystem of size bytes holding rootDir into the
// start of image, with every identifier derived from seed and every
// timestamp set to epoch.
func makeExt4(ctx context.Context, image, rootDir string, size, epoch int64, seed []byte) error {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return fmt.Errorf("mkfs.ext4 (e2fsprogs): %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(image), ".mkfs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	conf := filepath.Join(tmp, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConfig), 0o644); err != nil {
		return err
	}
	env := append(os.Environ(), "MKE2FS_CONFIG="+conf, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(epoch, 10))
	fsUUID := uuid.NewSHA1(uuidSpace, append([]byte("ext4 uuid "), seed...))
	hashSeed := uuid.NewSHA1(uuidSpace, append([]byte("ext4 hash seed "), seed...))
	args := []string{"-q", "-F", "-t", "ext4", "-L", "cairn-root", "-U", fsUUID.String(),
		"-E", "hash_seed=" + hashSeed.String() + ",root_owner=0:0,lazy_itable_init=0,nodiscard",
		"-d", rootDir, image, strconv.FormatInt(size/1024, 10) + "k"}
	cmd := exec.CommandContext(ctx, mkfs, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Could not allocate block") || strings.Contains(msg, "No space left") ||
			strings.Contains(msg, "Could not allocate inode") {
			return fmt.Errorf("%w of %d bytes: mkfs.ext4: %s", errNoSpace, size, lastLine(msg))
		}
		return fmt.Errorf("mkfs.ext4 -d %s: %v: %s", rootDir, err, msg)
	}
	return fixTimes(ctx, image, rootDir, epoch, env, tmp)
}

// uuidSpace is the namespace of the filesystem UUIDs Cairn derives.
var uuidSpace = uuid.MustParse("5f1f5e1c-6d0e-4b8a-9c3e-3a7c2b1d0e4f")

// fixTimes sets atime, ctime, mtime and crtime of every inode to epoch.
// mkfs.ext4 -d copies them from the source tree, and a ctime cannot be set
// there; debugfs can set them in the image.
func fixTimes(ctx context.Context, image, rootDir string, epoch int64, env []string, tmp string) error {
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		return fmt.Errorf("debugfs (e2fsprogs): %w", err)
	}
	var script bytes.Buffer
	when := strconv.FormatInt(epoch, 10)
	add := func(path string) {
		q := `"` + strings.ReplaceAll(path, `"`, `""`) + `"`
		for _, field := range []string{"atime", "ctime", "mtime", "crtime"} {
			fmt.Fprintf(&script, "sif %s %s %s\n", q, field, when)
		}
	}
	add("/lost+found")
	err = filepath.WalkDir(rootDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootDir, p)
		if err != nil {
			return err
		}
		if strings.ContainsAny(rel, "\n\r") {
			return fmt.Errorf("%s: a newline in a file name cannot be kept reproducibly", p)
		}
		if rel == "." {
			rel = ""
		}
		add("/" + filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return fmt.Errorf("root %s: %w", rootDir, err)
	}
	cmdFile := filepath.Join(tmp, "times.debugfs")
	if err := os.WriteFile(cmdFile, script.Bytes(), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, debugfs, "-w", "-f", cmdFile, image)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debugfs: set timestamps: %v: %s", err, stderr.String())
	}
	// debugfs exits 0 after failed commands; anything but its banner on
	// stderr is one.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("debugfs: set timestamps: %s", line)
		}
	}
	return nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
