package bootstate_test

import (
	"testing"

	"github.com/cairn-edge/cairn/partitions/bootstate"
	"github.com/cairn-edge/cairn/partitions/grubenv"
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
	return 1000
}

func TestPowerCutsNeverStrandTheDeviceGRUB(t *testing.T) {
	tl := exercise(t, grubBackend, lives(), 1)
	t.Logf("grub env: %d lives, %d byte cut points (%d distinct media simulated), %d boots",
		tl.lives, tl.cutPoints, tl.simulated, tl.boots)
}
