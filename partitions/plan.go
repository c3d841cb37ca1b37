package partitions

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

const (
	// firstUsableLBA follows the protective MBR, the GPT header and a
	// 128-entry partition array (32 sectors of 512 bytes).
	firstUsableLBA = 34
	// backupGPTSectors is the backup partition array plus the backup header
	// at the end of the medium.
	backupGPTSectors = 33
)

// ErrDoesNotFit is returned by Plan for a medium smaller than the layout.
var ErrDoesNotFit = errors.New("layout does not fit the medium")

// guidNamespace makes the GUIDs derived from a seed Cairn's own: the same
// seed in another tool yields different GUIDs.
var guidNamespace = uuid.MustParse("6f15fcf9-96ab-49b9-81a5-377945f6ca6a")

// Plan is a layout placed on a medium of a given size: concrete first and
// last sectors for each partition, ready to write as a GPT.
type Plan struct {
	Layout     string          `json:"layout"`
	DiskBytes  int64           `json:"disk_bytes"`
	SectorSize int64           `json:"sector_size"`
	DiskGUID   string          `json:"disk_guid"`
	Partitions []PartitionInfo `json:"partitions"`
}

// PartitionInfo is one GPT entry, planned or read back from a medium.
type PartitionInfo struct {
	Number   int    `json:"number"` // 1-based index in the GPT partition array
	Label    string `json:"label"`
	Type     string `json:"type"`      // name from PartitionTypes, or the GUID
	TypeGUID string `json:"type_guid"` // upper case
	GUID     string `json:"guid"`      // unique partition GUID, upper case
	FirstLBA uint64 `json:"first_lba"`
	LastLBA  uint64 `json:"last_lba"` // inclusive, as GPT counts
	Bytes    int64  `json:"bytes"`
}

// Plan places the layout on a medium of diskBytes bytes. Optional partitions
// are left out unless withOptional is set; the growing partition takes the
// space up to the backup GPT, rounded down to the alignment. The GUIDs are
// derived from the layout name (see Plan.Seed), so that the same plan always
// gives the same bytes.
func (l *Layout) Plan(diskBytes int64, withOptional bool) (*Plan, error) {
	if diskBytes <= 0 || diskBytes%SectorSize != 0 {
		return nil, fmt.Errorf("layout %s: disk size %d B: want a positive multiple of %d B", l.Name, diskBytes, SectorSize)
	}
	if need := l.MinDiskBytes(withOptional); diskBytes < need {
		return nil, fmt.Errorf("layout %s: needs %s, the medium has %s: %s short: %w",
			l.Name, FormatSize(need), FormatSize(diskBytes), FormatSize(need-diskBytes), ErrDoesNotFit)
	}
	sectors := diskBytes / SectorSize
	lastUsable := sectors - backupGPTSectors - 1
	plan := &Plan{Layout: l.Name, DiskBytes: diskBytes, SectorSize: SectorSize}
	end := int64(firstUsableLBA * SectorSize) // bytes
	for _, ps := range l.Partitions {
		if ps.Optional && !withOptional {
			continue
		}
		start := alignUp(end, l.Alignment)
		if ps.Offset > 0 {
			start = ps.Offset
		}
		end = start + ps.Size
		if ps.Grow {
			end = alignDown((lastUsable+1)*SectorSize, l.Alignment)
		}
		plan.Partitions = append(plan.Partitions, PartitionInfo{
			Number:   len(plan.Partitions) + 1,
			Label:    ps.Label,
			Type:     TypeName(ps.TypeGUID),
			TypeGUID: ps.TypeGUID,
			FirstLBA: uint64(start / SectorSize),
			LastLBA:  uint64(end/SectorSize - 1),
			Bytes:    end - start,
		})
	}
	plan.Seed(l.Name)
	return plan, nil
}

// Seed derives the disk GUID and every partition GUID from seed and the
// labels. Images built from the same plan and seed are identical byte for
// byte; an image builder seeds with the release to tell releases apart.
func (p *Plan) Seed(seed string) {
	derive := func(what string) string {
		return strings.ToUpper(uuid.NewSHA1(guidNamespace, []byte(seed+"\x00"+what)).String())
	}
	p.DiskGUID = derive("disk")
	for i := range p.Partitions {
		p.Partitions[i].GUID = derive("partition\x00" + p.Partitions[i].Label)
	}
}

// Partition returns the planned partition with the given label.
func (p *Plan) Partition(label string) (PartitionInfo, bool) {
	for _, pi := range p.Partitions {
		if pi.Label == label {
			return pi, true
		}
	}
	return PartitionInfo{}, false
}
