package partitions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// ErrCannotGrow means the partition asked to grow is missing, is not the
// last one on the medium, or the medium is smaller than the table says.
var ErrCannotGrow = errors.New("cannot grow the partition")

// GrowLast extends the partition labelled label, which must end after every
// other partition, to the end of the medium f (a disk image or a whole-disk
// block device) rounded down to alignment bytes, and moves the backup GPT to
// the medium's last sectors. Both GPT copies are rewritten with new CRCs,
// backup first, so that a cut during the write leaves one valid table. It
// returns the partition as it is afterwards and whether the medium changed:
// a table whose backup already sits at the end and whose partition already
// reaches the last aligned sector is left alone.
func GrowLast(f *os.File, label string, alignment int64) (PartitionInfo, bool, error) {
	name := f.Name()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: size: %w", label, name, err)
	}
	if alignment <= 0 || alignment%SectorSize != 0 {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: alignment %d B is not a multiple of %d B", label, name, alignment, SectorSize)
	}
	if _, err := ReadTable(name); err != nil { // the protective MBR and an intact primary
		return PartitionInfo{}, false, fmt.Errorf("grow %s: %w", label, err)
	}
	table, err := gpt.Read(f, SectorSize, SectorSize)
	if err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: %v: %w", label, name, err, ErrNoGPT)
	}
	p, err := lastPartition(table, label)
	if err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: %w", label, name, err)
	}
	oldBackup, err := backupLBA(f)
	if err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: %w", label, name, err)
	}
	sectors := uint64(size / SectorSize)
	lastUsable := sectors - backupGPTSectors - 1
	end := uint64(alignDown(int64(lastUsable+1)*SectorSize, alignment)/SectorSize) - 1
	switch {
	case end < p.End || oldBackup >= sectors:
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: the medium has %d sectors, the table reaches sector %d: %w",
			label, name, sectors, max(p.End, oldBackup), ErrCannotGrow)
	case end == p.End && oldBackup == sectors-1:
		return infoOf(p), false, nil
	}
	table.Resize(uint64(size))
	p.End = end
	p.Size = (p.End - p.Start + 1) * SectorSize
	table.ProtectiveMBR = false // written below, as WriteImage writes it
	if err := table.Write(f, size); err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: write GPT: %w", label, name, err)
	}
	if _, err := f.WriteAt(protectiveMBR(int64(sectors)), 0); err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: protective MBR: %w", label, name, err)
	}
	// The old backup header now lies inside the grown partition: clear it,
	// so that no tool mistakes it for a table.
	if oldBackup != sectors-1 {
		if _, err := f.WriteAt(make([]byte, SectorSize), int64(oldBackup)*SectorSize); err != nil {
			return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: clear the old backup GPT at sector %d: %w", label, name, oldBackup, err)
		}
	}
	if err := f.Sync(); err != nil {
		return PartitionInfo{}, false, fmt.Errorf("grow %s on %s: %w", label, name, err)
	}
	return infoOf(p), true, nil
}

// lastPartition is the partition labelled label, refused unless it ends
// after every other one.
func lastPartition(table *gpt.Table, label string) (*gpt.Partition, error) {
	var found *gpt.Partition
	for _, p := range table.Partitions {
		if p.Type != gpt.Unused && p.Name == label {
			found = p
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no partition labelled %s: %w", label, ErrCannotGrow)
	}
	for _, p := range table.Partitions {
		if p.Type != gpt.Unused && p != found && p.End > found.End {
			return nil, fmt.Errorf("partition %s (sectors %d-%d) lies after it: %w", p.Name, p.Start, p.End, ErrCannotGrow)
		}
	}
	return found, nil
}

// backupLBA reads where the primary GPT header says the backup header is.
func backupLBA(f *os.File) (uint64, error) {
	hdr := make([]byte, SectorSize)
	if _, err := f.ReadAt(hdr, SectorSize); err != nil {
		return 0, fmt.Errorf("read the GPT header: %w", err)
	}
	return binary.LittleEndian.Uint64(hdr[32:40]), nil
}

func infoOf(p *gpt.Partition) PartitionInfo {
	return PartitionInfo{
		Number: p.Index, Label: p.Name, Type: TypeName(string(p.Type)), TypeGUID: string(p.Type), GUID: p.GUID,
		FirstLBA: p.Start, LastLBA: p.End, Bytes: int64(p.Size),
	}
}
