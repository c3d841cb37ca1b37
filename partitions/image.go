package partitions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"unicode/utf16"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// ErrNoGPT is returned by ReadTable for a medium without a valid protective
// MBR and GPT.
var ErrNoGPT = errors.New("no GPT")

// WriteImage creates (or replaces) the file at path as a sparse disk image of
// plan.DiskBytes bytes holding a protective MBR and the plan's GPT, primary
// and backup. The partitions' contents are left as holes. The image appears
// at path complete or not at all.
func WriteImage(path string, plan *Plan) error {
	if err := plan.check(); err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	table := &gpt.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize, GUID: plan.DiskGUID}
	for _, p := range plan.Partitions {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: p.FirstLBA,
			End:   p.LastLBA,
			Size:  uint64(p.Bytes),
			Type:  gpt.Type(p.TypeGUID),
			Name:  p.Label,
			GUID:  p.GUID,
		})
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Abort()
	if err := f.Truncate(plan.DiskBytes); err != nil {
		return fmt.Errorf("image %s: size %d: %w", path, plan.DiskBytes, err)
	}
	if _, err := f.WriteAt(protectiveMBR(plan.DiskBytes/SectorSize), 0); err != nil {
		return fmt.Errorf("image %s: protective MBR: %w", path, err)
	}
	if err := table.Write(f.File, plan.DiskBytes); err != nil {
		return fmt.Errorf("image %s: GPT: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// protectiveMBR is sector 0 of a GPT medium: one partition of type 0xEE
// from sector 1 over the whole medium, or as much of it as 32 bits count.
func protectiveMBR(sectors int64) []byte {
	b := make([]byte, SectorSize)
	e := b[446:462]
	copy(e[1:4], []byte{0x00, 0x02, 0x00}) // CHS of sector 1
	e[4] = 0xEE
	copy(e[5:8], []byte{0xFF, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(e[8:12], 1)
	binary.LittleEndian.PutUint32(e[12:16], uint32(min(sectors-1, 0xFFFFFFFF)))
	b[510], b[511] = 0x55, 0xAA
	return b
}

// check refuses a plan that would not make a valid GPT, whoever built it.
func (p *Plan) check() error {
	if p == nil || len(p.Partitions) == 0 {
		return errors.New("empty plan")
	}
	if p.SectorSize != SectorSize || p.DiskBytes <= 0 || p.DiskBytes%SectorSize != 0 {
		return fmt.Errorf("plan for %d B with %d B sectors: want a multiple of %d B sectors", p.DiskBytes, p.SectorSize, SectorSize)
	}
	if len(p.Partitions) > maxPartitions {
		return fmt.Errorf("%d partitions, a GPT holds %d", len(p.Partitions), maxPartitions)
	}
	if _, err := uuid.Parse(p.DiskGUID); err != nil {
		return fmt.Errorf("disk GUID %q: %w", p.DiskGUID, err)
	}
	lastUsable := uint64(p.DiskBytes/SectorSize - backupGPTSectors - 1)
	next := uint64(firstUsableLBA)
	for i, pi := range p.Partitions {
		switch {
		case pi.Number != i+1:
			return fmt.Errorf("partition %s: number %d, want %d", pi.Label, pi.Number, i+1)
		case pi.FirstLBA < next || pi.LastLBA < pi.FirstLBA || pi.LastLBA > lastUsable:
			return fmt.Errorf("partition %s: sectors %d-%d overlap the GPT or the partition before (usable from %d to %d)",
				pi.Label, pi.FirstLBA, pi.LastLBA, next, lastUsable)
		case pi.Bytes != int64(pi.LastLBA-pi.FirstLBA+1)*SectorSize:
			return fmt.Errorf("partition %s: %d B does not match sectors %d-%d", pi.Label, pi.Bytes, pi.FirstLBA, pi.LastLBA)
		case len(pi.Label) == 0 || len(utf16.Encode([]rune(pi.Label))) > maxLabelUTF16:
			return fmt.Errorf("partition %q: a GPT label holds 1 to %d UTF-16 code units", pi.Label, maxLabelUTF16)
		}
		for what, g := range map[string]string{"type GUID": pi.TypeGUID, "GUID": pi.GUID} {
			if _, err := uuid.Parse(g); err != nil {
				return fmt.Errorf("partition %s: %s %q: %w", pi.Label, what, g, err)
			}
		}
		next = pi.LastLBA + 1
	}
	return nil
}

// ReadTable reads the GPT of a disk image or block device. It refuses a
// medium whose primary GPT is damaged, even when the backup is intact.
func ReadTable(path string) ([]PartitionInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read GPT: %w", err)
	}
	defer f.Close()
	mbr := make([]byte, SectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read GPT %s: sector 0: %w", path, err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA || mbr[446+4] != 0xEE {
		return nil, fmt.Errorf("read GPT %s: sector 0 is not a protective MBR: %w", path, ErrNoGPT)
	}
	table, err := gpt.Read(f, SectorSize, SectorSize)
	if err != nil {
		return nil, fmt.Errorf("read GPT %s: %v: %w", path, err, ErrNoGPT)
	}
	if table.RecoveredFromBackup {
		return nil, fmt.Errorf("read GPT %s: primary GPT damaged (the backup is intact; sgdisk -e can rewrite it): %w", path, ErrNoGPT)
	}
	var parts []PartitionInfo
	for _, p := range table.Partitions {
		parts = append(parts, PartitionInfo{
			Number:   p.Index,
			Label:    p.Name,
			Type:     TypeName(string(p.Type)),
			TypeGUID: string(p.Type),
			GUID:     p.GUID,
			FirstLBA: p.Start,
			LastLBA:  p.End,
			Bytes:    int64(p.Size),
		})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts, nil
}
