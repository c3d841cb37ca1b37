// Package partitions owns Cairn's disk: the GPT layouts (one YAML per layout),
// the root slots they define, and finding which slot a running device booted.
package partitions

import "fmt"

// Slot names one of the two root slots.
type Slot string

const (
	SlotA Slot = "A"
	SlotB Slot = "B"
)

// Slots lists both slots in the order ties are broken.
var Slots = [2]Slot{SlotA, SlotB}

// ParseSlot accepts "A", "B", "a" or "b".
func ParseSlot(s string) (Slot, error) {
	switch s {
	case "A", "a":
		return SlotA, nil
	case "B", "b":
		return SlotB, nil
	}
	return "", fmt.Errorf("slot %q: want A or B", s)
}

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Label is the GPT partition label of the slot, e.g. CAIRN_ROOT_A.
func (s Slot) Label() string { return "CAIRN_ROOT_" + string(s) }

// Valid reports whether s is A or B.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }
