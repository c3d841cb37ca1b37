package partitions

import (
	"errors"
	"testing"
)

// FuzzParseLayout checks that no input panics the parser, that every
// refusal is a located *LayoutError, and that every layout it accepts can be
// planned into a valid GPT on the smallest medium it claims to fit.
func FuzzParseLayout(f *testing.F) {
	for _, name := range Layouts() {
		data, err := layoutFiles.ReadFile(name + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(valid))
	f.Add([]byte(tiny))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLayout("fuzz.yaml", data)
		if err != nil {
			var le *LayoutError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LayoutError", err)
			}
			return
		}
		for _, withOptional := range []bool{false, true} {
			disk := l.MinDiskBytes(withOptional)
			plan, err := l.Plan(disk, withOptional)
			if err != nil {
				t.Fatalf("accepted layout does not fit its own minimum %d B: %v", disk, err)
			}
			if err := plan.check(); err != nil {
				t.Fatalf("accepted layout plans an invalid GPT: %v", err)
			}
			for _, p := range plan.Partitions {
				if int64(p.FirstLBA)*SectorSize%l.Alignment != 0 || p.Bytes%l.Alignment != 0 {
					t.Fatalf("%s at sector %d, %d B: not aligned to %d", p.Label, p.FirstLBA, p.Bytes, l.Alignment)
				}
			}
			if _, err := l.Plan(disk-SectorSize, withOptional); !errors.Is(err, ErrDoesNotFit) {
				t.Fatalf("a medium one sector short of the minimum: %v", err)
			}
		}
	})
}
