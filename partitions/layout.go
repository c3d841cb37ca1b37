package partitions

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The layouts shipped with Cairn, one file each, named after the layout.
//
//go:embed *.yaml
var layoutFiles embed.FS

// Labels every layout must carry. The boot partition is one of two, so that a
// layout says by its label which kind of bootloader it is for.
const (
	LabelEFI    = "CAIRN_EFI"
	LabelBoot   = "CAIRN_BOOT"
	LabelState  = "CAIRN_STATE"
	LabelCIData = "CIDATA"
)

// ErrUnknownLayout is returned by LoadLayout for a name no layout file has.
var ErrUnknownLayout = errors.New("unknown layout")

// Layout is a parsed and validated layout file: the partitions of a Cairn
// disk in the order they are laid out, with sizes but not yet positions.
type Layout struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Alignment   int64           `json:"alignment"` // bytes; every start and size is a multiple
	Partitions  []PartitionSpec `json:"partitions"`
}

// PartitionSpec is one partition of a layout.
type PartitionSpec struct {
	Label    string `json:"label"`
	Type     string `json:"type"`      // as written: a name from PartitionTypes or a GUID
	TypeGUID string `json:"type_guid"` // upper-case GPT partition type GUID
	Size     int64  `json:"size"`      // bytes; the minimum size when Grow is set
	Offset   int64  `json:"offset,omitempty"`
	Grow     bool   `json:"grow,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

// LayoutError is a problem in a layout file, located by line and key.
type LayoutError struct {
	File string
	Line int    // 1-based; 0 when the problem has no line (an empty file)
	Key  string // e.g. "partitions[2].size"; empty for the whole file
	Msg  string
}

func (e *LayoutError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("layout %s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("layout %s: %s: %s", loc, e.Key, e.Msg)
}

// Layouts lists the names of the layouts shipped with Cairn, sorted.
func Layouts() []string {
	entries, err := fs.ReadDir(layoutFiles, ".")
	if err != nil {
		return nil // the embedded directory always reads
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// LoadLayout parses the shipped layout with the given name.
func LoadLayout(name string) (*Layout, error) {
	file := name + ".yaml"
	if name == "" || path.Base(name) != name || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("layout %q: %w (known: %s)", name, ErrUnknownLayout, strings.Join(Layouts(), ", "))
	}
	data, err := layoutFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("layout %q: %w (known: %s)", name, ErrUnknownLayout, strings.Join(Layouts(), ", "))
	}
	l, err := ParseLayout(file, data)
	if err != nil {
		return nil, err
	}
	if l.Name != name {
		return nil, &LayoutError{File: file, Key: "name", Msg: fmt.Sprintf("%q does not match the file name", l.Name)}
	}
	return l, nil
}

// Partition returns the spec with the given label.
func (l *Layout) Partition(label string) (PartitionSpec, bool) {
	for _, p := range l.Partitions {
		if p.Label == label {
			return p, true
		}
	}
	return PartitionSpec{}, false
}

// MinDiskBytes is the smallest medium the layout fits on, rounded up to the
// alignment: every partition at its (minimum) size, plus the backup GPT.
func (l *Layout) MinDiskBytes(withOptional bool) int64 {
	end := int64(firstUsableLBA * SectorSize)
	for _, p := range l.Partitions {
		if p.Optional && !withOptional {
			continue
		}
		start := alignUp(end, l.Alignment)
		if p.Offset > 0 {
			start = p.Offset
		}
		end = start + p.Size
	}
	return alignUp(end+backupGPTSectors*SectorSize, l.Alignment)
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

func alignDown(n, a int64) int64 { return n / a * a }
