package host

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// maxFileContent bounds a decompressed write_files entry: configuration
// files are small, and a gzip bomb must not fill /var.
const maxFileContent = 64 << 20

// writeFiles writes the write_files entries whose defer is deferred.
func (h *Host) writeFiles(files []cloudinit.WriteFile, deferred bool, acts *[]Action) error {
	var errs []error
	for i, f := range files {
		if f.Defer != deferred {
			continue
		}
		if err := h.writeOne(f, acts); err != nil {
			errs = append(errs, fmt.Errorf("write_files[%d] %s: %w", i, f.Path, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Host) writeOne(f cloudinit.WriteFile, acts *[]Action) error {
	data, err := DecodeContent(f.Content, f.Encoding)
	if err != nil {
		return err
	}
	uid, gid, err := h.owner(f.Owner)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if f.Permissions != 0 {
		mode = modeOf(f.Permissions)
	}
	if !f.Append {
		return h.writeFile(f.Path, data, mode, uid, gid, acts)
	}
	// Appending is in place by nature: the bytes go after what is there.
	p := h.path(f.Path)
	if err := os.MkdirAll(h.path(dirOf(f.Path)), 0o755); err != nil {
		return err
	}
	_, statErr := os.Stat(p)
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, fs.ErrNotExist) {
		if err = os.Chown(p, uid, gid); err == nil {
			err = os.Chmod(p, mode)
		}
	}
	if err != nil {
		return err
	}
	*acts = append(*acts, Action{OpWriteFile, f.Path + " (append)"})
	return nil
}

func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// modeOf turns an octal mode as written in user-data (04755) into Go's.
func modeOf(m cloudinit.FileMode) fs.FileMode {
	mode := fs.FileMode(m) & fs.ModePerm
	for bit, flag := range map[cloudinit.FileMode]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if m&bit != 0 {
			mode |= flag
		}
	}
	return mode
}

// DecodeContent decodes a write_files content as encoding says: text,
// b64/base64, gz/gzip, or gz+b64 in its spellings (base64 first, then
// gunzip).
func DecodeContent(content, encoding string) ([]byte, error) {
	enc := strings.ToLower(encoding)
	data := []byte(content)
	if strings.Contains(enc, "b64") || strings.Contains(enc, "base64") {
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, content)
		b, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", encoding, err)
		}
		data = b
	}
	if strings.HasPrefix(enc, "gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", encoding, err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxFileContent+1))
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", encoding, err)
		}
		if len(b) > maxFileContent {
			return nil, fmt.Errorf("encoding %s: more than %d bytes decompressed", encoding, maxFileContent)
		}
		data = b
	}
	return data, nil
}

// owner resolves "user:group", "user" (its primary group) or numeric ids
// against the image's accounts and the device's; "" is root:root.
func (h *Host) owner(spec string) (uid, gid int, err error) {
	if spec == "" {
		return 0, 0, nil
	}
	t, err := h.readIDs()
	if err != nil {
		return 0, 0, err
	}
	user, grp, hasGroup := strings.Cut(spec, ":")
	uid, gid = -1, -1
	if n, err := strconv.Atoi(user); err == nil {
		uid = n
	} else if a, ok := t.imageUsers[user]; ok {
		uid, gid = a.uid, a.gid
	} else if a, ok := t.extraUsers[user]; ok {
		uid, gid = a.uid, a.gid
	} else {
		return 0, 0, fmt.Errorf("owner %q: no user %s (a user from users needs defer: true)", spec, user)
	}
	if hasGroup {
		if n, err := strconv.Atoi(grp); err == nil {
			gid = n
		} else if g, ok := t.imageGroups[grp]; ok {
			gid = g.gid
		} else if g, ok := t.extraGroups[grp]; ok {
			gid = g.gid
		} else {
			return 0, 0, fmt.Errorf("owner %q: no group %s", spec, grp)
		}
	}
	if gid < 0 {
		return 0, 0, fmt.Errorf("owner %q: give the group of a numeric user", spec)
	}
	return uid, gid, nil
}
