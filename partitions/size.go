package partitions

import (
	"fmt"
	"strconv"
	"strings"
)

// SectorSize is the logical sector size Cairn's layouts are planned for.
const SectorSize = 512

// maxSize bounds every size and offset a layout may name (1 PiB), so that
// sums of up to 128 of them never overflow an int64.
const maxSize = 1 << 50

var sizeUnits = []struct {
	suffix string
	bytes  int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10},
	{"B", 1},
}

// ParseSize reads a size in bytes written as a whole number with an optional
// binary unit: "512", "64MiB", "1 GiB", "8G" (K, M, G and T are binary too,
// as in truncate(1)). Decimal units (MB, GB) are refused rather than guessed.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.bytes
			break
		}
	}
	if strings.HasSuffix(t, "k") || strings.HasSuffix(t, "K") || strings.HasSuffix(t, "M") ||
		strings.HasSuffix(t, "G") || strings.HasSuffix(t, "T") {
		return 0, fmt.Errorf("size %q: decimal units are ambiguous, write KiB, MiB, GiB or TiB", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || t == "" || t[0] == '+' {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit KiB, MiB, GiB or TiB", s)
	}
	if n > maxSize/mult {
		return 0, fmt.Errorf("size %q: larger than 1 PiB", s)
	}
	return n * mult, nil
}

// FormatSize writes n in the largest binary unit that divides it exactly,
// so that ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	for _, u := range sizeUnits[:4] {
		if n != 0 && n%u.bytes == 0 {
			return fmt.Sprintf("%d %s", n/u.bytes, u.suffix)
		}
	}
	return fmt.Sprintf("%d B", n)
}
