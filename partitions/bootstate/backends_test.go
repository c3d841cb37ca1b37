package bootstate_test

import (
	"testing"

	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grubenv"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

var grubBackend = backend{
	name: "grub",
	size: grubenv.Size,
	fresh: func(m *tornMedium, vars []bootstate.Var) error {
		b := grubenv.NewBlock(grubenv.Size)
		for _, v := range vars {
			if err := b.Set(v.Name, v.Value); err != nil {
				return err
			}
		}
		copy(m.data, b.Bytes())
		return nil
	},
	open: func(m *tornMedium) (bootstate.Env, error) { return grubenv.New(m, grubenv.Size), nil },
}

// lives is how many random lives each backend runs; -short runs fewer.
func lives() int {
	if testing.Short() {
		return 40
	}
	return 500
}

func TestPowerCutsNeverStrandTheDeviceGRUB(t *testing.T) {
	tl := exercise(t, grubBackend, lives(), 1)
	t.Logf("grub env: %d lives, %d byte cut points (%d distinct media simulated), %d boots",
		tl.lives, tl.cutPoints, tl.simulated, tl.boots)
}

// uBootBackend lays the env copies out one after the other on the medium.
func uBootBackend(redundant bool) backend {
	const copySize = 0x2000
	n := 1
	if redundant {
		n = 2
	}
	regions := func(m *tornMedium) []ubootenv.Region {
		var rs []ubootenv.Region
		for i := range n {
			rs = append(rs, ubootenv.Region{Dev: m, Offset: int64(i * copySize), Size: copySize})
		}
		return rs
	}
	name := "u-boot single copy"
	if redundant {
		name = "u-boot redundant"
	}
	return backend{
		name: name,
		size: n * copySize,
		fresh: func(m *tornMedium, vars []bootstate.Var) error {
			vm := map[string]string{"bootdelay": "0"}
			for _, v := range vars {
				vm[v.Name] = v.Value
			}
			return ubootenv.Format(regions(m), redundant, vm)
		},
		open: func(m *tornMedium) (bootstate.Env, error) { return ubootenv.New(regions(m), redundant), nil },
	}
}

func TestPowerCutsNeverStrandTheDeviceUBootRedundant(t *testing.T) {
	tl := exercise(t, uBootBackend(true), lives(), 2)
	t.Logf("u-boot redundant env: %d lives, %d byte cut points (%d distinct media simulated), %d boots",
		tl.lives, tl.cutPoints, tl.simulated, tl.boots)
}

// A single-copy U-Boot env loses everything when a write is torn: the CRC
// fails and U-Boot boots with its built-in defaults. The property test must
// see that, which is why Cairn boards use redundant envs.
func TestSingleCopyUBootEnvIsNotPowerSafe(t *testing.T) {
	be := uBootBackend(false)
	l := life{releases: []releaseKind{healthy}, tries: []int{3}, reboots: []int{0}}
	writes, _, err := run(t, be, l, cutPoint{write: -1})
	if err != nil {
		t.Fatalf("without power cuts: %v", err)
	}
	for i, w := range writes {
		for _, k := range distinctCuts(w) {
			if _, _, err := run(t, be, l, cutPoint{write: i, bytes: k}); err != nil {
				t.Logf("power cut at byte %d of write %d: %v", k, i, err)
				return
			}
		}
	}
	t.Fatal("no power cut broke a single-copy env; the property test cannot see torn writes")
}
