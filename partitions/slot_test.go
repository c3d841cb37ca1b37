package partitions

import "testing"

func TestSlotNames(t *testing.T) {
	for _, tc := range []struct {
		in    string
		slot  Slot
		label string
		other Slot
	}{
		{"A", SlotA, "CAIRN_ROOT_A", SlotB},
		{"b", SlotB, "CAIRN_ROOT_B", SlotA},
	} {
		s, err := ParseSlot(tc.in)
		if err != nil || s != tc.slot || s.Label() != tc.label || s.Other() != tc.other {
			t.Errorf("ParseSlot(%q) = %v %v, label %s other %s", tc.in, s, err, s.Label(), s.Other())
		}
	}
	if _, err := ParseSlot("C"); err == nil {
		t.Error("slot C accepted")
	}
}
