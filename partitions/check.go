package partitions

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// check validates what no single partition can: labels against each other,
// the labels every Cairn disk needs, slot sizes, growth and offsets.
func (p *parser) check(l *Layout, partsKey *yaml.Node, nodes []map[string]*yaml.Node) error {
	seen := map[string]int{} // label -> index
	grows := -1
	for i, ps := range l.Partitions {
		key := fmt.Sprintf("partitions[%d]", i)
		if first, dup := seen[ps.Label]; dup {
			return p.errf(nodes[i]["label"], key+".label", "%s repeated (first on line %d)", ps.Label, nodes[first]["label"].Line)
		}
		seen[ps.Label] = i
		if !ps.Grow {
			continue
		}
		if grows >= 0 {
			return p.errf(nodes[i]["grow"], key+".grow", "%s already grows (line %d); a layout grows at most one partition",
				l.Partitions[grows].Label, nodes[grows]["grow"].Line)
		}
		grows = i
	}
	if err := p.checkRequired(l, partsKey, nodes, seen); err != nil {
		return err
	}
	if grows >= 0 && grows != len(l.Partitions)-1 {
		return p.errf(nodes[grows]["grow"], fmt.Sprintf("partitions[%d].grow", grows),
			"%s is followed by %s; only the last partition can grow to the end of the medium",
			l.Partitions[grows].Label, l.Partitions[grows+1].Label)
	}
	return p.checkOffsets(l, nodes)
}

func (p *parser) checkRequired(l *Layout, partsKey *yaml.Node, nodes []map[string]*yaml.Node, seen map[string]int) error {
	efi, hasEFI := seen[LabelEFI]
	boot, hasBoot := seen[LabelBoot]
	if hasEFI && hasBoot {
		return p.errf(nodes[max(efi, boot)]["label"], fmt.Sprintf("partitions[%d].label", max(efi, boot)),
			"a layout has either %s (UEFI) or %s (U-Boot), not both", LabelEFI, LabelBoot)
	}
	bootLabel := LabelEFI + " or " + LabelBoot
	if hasEFI {
		bootLabel = LabelEFI
	} else if hasBoot {
		bootLabel = LabelBoot
	}
	required := []string{bootLabel, SlotA.Label(), SlotB.Label(), LabelState}
	for _, label := range required {
		i, ok := seen[label]
		if !ok {
			return p.errf(partsKey, "partitions", "no %s partition; a Cairn disk needs %s or %s, %s, %s and %s",
				label, LabelEFI, LabelBoot, SlotA.Label(), SlotB.Label(), LabelState)
		}
		if l.Partitions[i].Optional {
			return p.errf(nodes[i]["optional"], fmt.Sprintf("partitions[%d].optional", i), "%s is required and cannot be optional", label)
		}
	}
	a, b := seen[SlotA.Label()], seen[SlotB.Label()]
	for _, i := range []int{a, b} {
		if l.Partitions[i].Grow {
			return p.errf(nodes[i]["grow"], fmt.Sprintf("partitions[%d].grow", i), "root slots have a fixed size and cannot grow")
		}
	}
	if sa, sb := l.Partitions[a].Size, l.Partitions[b].Size; sa != sb {
		return p.errf(nodes[b]["size"], fmt.Sprintf("partitions[%d].size", b),
			"%s is %s but %s (line %d) is %s; both slots must be the same size so that either holds any release",
			SlotB.Label(), FormatSize(sb), SlotA.Label(), nodes[a]["size"].Line, FormatSize(sa))
	}
	return nil
}

// checkOffsets lays the partitions out in file order, every optional one
// included, and refuses an explicit offset that reaches back into the
// partition before it.
func (p *parser) checkOffsets(l *Layout, nodes []map[string]*yaml.Node) error {
	end := int64(firstUsableLBA * SectorSize)
	for i, ps := range l.Partitions {
		start := alignUp(end, l.Alignment)
		if ps.Offset > 0 {
			if ps.Offset < end && i > 0 {
				prev := l.Partitions[i-1]
				return p.errf(nodes[i]["offset"], fmt.Sprintf("partitions[%d].offset", i),
					"%s at %s overlaps %s (line %d), which ends at %s; partitions are laid out in file order",
					ps.Label, FormatSize(ps.Offset), prev.Label, nodes[i-1]["label"].Line, FormatSize(end))
			}
			start = ps.Offset
		}
		end = start + ps.Size
	}
	return nil
}
