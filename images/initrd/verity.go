package initrd

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/images/verity"
)

// dmVersion is the device-mapper ioctl interface version asked for: 4.0.0
// is what every kernel with dm-verity speaks.
var dmVersion = [3]uint32{4, 0, 0}

// VerityTable is the dm-verity table line for the slot on dev described by
// its footer: format 1, data and tree on the same device, the tree right
// after the filesystem. Corrupted blocks read as I/O errors.
func VerityTable(dev string, f *footer.Footer) (string, error) {
	if f.DataSize <= 0 || f.DataSize%verity.BlockSize != 0 || f.HashOffset%verity.BlockSize != 0 || len(f.RootHash) == 0 {
		return "", fmt.Errorf("footer of %s: data size %d, hash offset %d: not a dm-verity layout", dev, f.DataSize, f.HashOffset)
	}
	salt := "-"
	if len(f.Salt) > 0 {
		salt = hex.EncodeToString(f.Salt)
	}
	return fmt.Sprintf("%d %s %s %d %d %d %d %s %s %s", verity.HashType, dev, dev, verity.BlockSize, verity.BlockSize,
		f.DataSize/verity.BlockSize, f.HashOffset/verity.BlockSize, verity.Algorithm, hex.EncodeToString(f.RootHash), salt), nil
}

// dmRequest is one device-mapper ioctl: the dm_ioctl header, then for a
// table load one target spec and its NUL-terminated parameters.
func dmRequest(name string, flags uint32, sectors uint64, target, params string) ([]byte, error) {
	var hdr unix.DmIoctl
	if len(name) >= len(hdr.Name) {
		return nil, fmt.Errorf("device-mapper name %q is too long", name)
	}
	hdr.Version = dmVersion
	hdr.Data_start = unix.SizeofDmIoctl
	hdr.Flags = flags
	copy(hdr.Name[:], name)
	var body bytes.Buffer
	if target != "" {
		hdr.Target_count = 1
		spec := unix.DmTargetSpec{Length: sectors}
		copy(spec.Target_type[:], target)
		p := append([]byte(params), 0)
		for len(p)%8 != 0 {
			p = append(p, 0)
		}
		spec.Next = uint32(unix.SizeofDmTargetSpec + len(p))
		if err := binary.Write(&body, binary.NativeEndian, spec); err != nil {
			return nil, err
		}
		body.Write(p)
	}
	hdr.Data_size = uint32(unix.SizeofDmIoctl + body.Len())
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, hdr); err != nil {
		return nil, err
	}
	buf.Write(body.Bytes())
	return buf.Bytes(), nil
}

func dmIoctl(ctl *os.File, req uintptr, name string, flags uint32, sectors uint64, target, params string) (*unix.DmIoctl, error) {
	b, err := dmRequest(name, flags, sectors, target, params)
	if err != nil {
		return nil, err
	}
	// The kernel may write its answer up to Data_size bytes; the header is
	// what we read back.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), req, uintptr(unsafe.Pointer(&b[0]))); errno != 0 {
		return nil, errno
	}
	var out unix.DmIoctl
	if err := binary.Read(bytes.NewReader(b), binary.NativeEndian, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetupVerity creates the read-only dm-verity device name over the slot
// partition dev, as its footer describes, and returns the path of its
// block device node, made under devDir.
func SetupVerity(devDir, name, dev string, f *footer.Footer) (string, error) {
	table, err := VerityTable(dev, f)
	if err != nil {
		return "", err
	}
	node, err := dmCreate(devDir, name, unix.DM_READONLY_FLAG, uint64(f.DataSize/512), "verity", table)
	if err != nil {
		return "", fmt.Errorf("dm-verity %s: %w (table %q; is dm-verity loaded?)", dev, err, table)
	}
	return node, nil
}

// dmCreate creates the device-mapper device name with one target of
// sectors 512-byte sectors, activates it and makes its node under
// devDir/mapper. A table that does not load leaves no device behind.
// Errors never quote params: a crypt table holds the key.
func dmCreate(devDir, name string, flags uint32, sectors uint64, target, params string) (string, error) {
	ctl, err := os.OpenFile(filepath.Join(devDir, "mapper", "control"), os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("device-mapper control (is dm-mod loaded?): %w", err)
	}
	defer ctl.Close()
	created, err := dmIoctl(ctl, unix.DM_DEV_CREATE, name, 0, 0, "", "")
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := dmIoctl(ctl, unix.DM_TABLE_LOAD, name, flags, sectors, target, params); err != nil {
		dmIoctl(ctl, unix.DM_DEV_REMOVE, name, 0, 0, "", "")
		return "", fmt.Errorf("load %s table of %s: %w", target, name, err)
	}
	if _, err := dmIoctl(ctl, unix.DM_DEV_SUSPEND, name, 0, 0, "", ""); err != nil {
		dmIoctl(ctl, unix.DM_DEV_REMOVE, name, 0, 0, "", "")
		return "", fmt.Errorf("resume %s: %w", name, err)
	}
	node := filepath.Join(devDir, "mapper", name)
	major, minor := unix.Major(created.Dev), unix.Minor(created.Dev)
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil && err != unix.EEXIST {
		return "", fmt.Errorf("mknod %s (%d:%d): %w", node, major, minor, err)
	}
	return node, nil
}

// dmRemove removes the device-mapper device name and its node under
// devDir/mapper; the device must not be in use.
func dmRemove(devDir, name string) error {
	ctl, err := os.OpenFile(filepath.Join(devDir, "mapper", "control"), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("device-mapper control: %w", err)
	}
	defer ctl.Close()
	if _, err := dmIoctl(ctl, unix.DM_DEV_REMOVE, name, 0, 0, "", ""); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.Remove(filepath.Join(devDir, "mapper", name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
