package partitions

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// blockDev is a block device as sysfs describes it.
type blockDev struct {
	name      string // kernel name: sda2, mmcblk0p3, dm-0
	dir       string // its sysfs directory, symlinks resolved
	devName   string // DEVNAME from uevent: the name under /dev
	partName  string // PARTNAME from uevent: the GPT label, for partitions
	partition bool
	parent    string // kernel name of the disk, for partitions
}

func (d *blockDev) path() string { return "/dev/" + d.devName }

// readBlockDev reads the device whose sysfs entry (a symlink, as in
// /sys/class/block or /sys/dev/block) is at link.
func readBlockDev(link string) (*blockDev, error) {
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, err
	}
	d := &blockDev{name: filepath.Base(dir), dir: dir}
	f, err := os.Open(filepath.Join(dir, "uevent"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "DEVNAME":
			d.devName = v
		case "PARTNAME":
			d.partName = v
		case "DEVTYPE":
			d.partition = v == "partition"
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if d.devName == "" {
		d.devName = strings.TrimPrefix(devPath(d.name), "/dev/")
	}
	if d.partition {
		d.parent = filepath.Base(filepath.Dir(dir))
	}
	return d, nil
}

// partitionsLabelled lists the partitions whose GPT label is label.
func partitionsLabelled(root, label string) ([]*blockDev, error) {
	class := filepath.Join(root, "sys/class/block")
	entries, err := os.ReadDir(class)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", label, err)
	}
	var found []*blockDev
	for _, e := range entries {
		d, err := readBlockDev(filepath.Join(class, e.Name()))
		if err != nil {
			// A device that went away while we looked is not the one.
			continue
		}
		if d.partition && d.partName == label {
			found = append(found, d)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].name < found[j].name })
	return found, nil
}

// devPath is the /dev node of a kernel device name: sysfs writes the
// slashes of names like cciss/c0d0 as "!".
func devPath(kernelName string) string { return "/dev/" + strings.ReplaceAll(kernelName, "!", "/") }

func paths(devs []*blockDev) string {
	var p []string
	for _, d := range devs {
		p = append(p, d.path())
	}
	return strings.Join(p, ", ")
}
