package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/tests/tpmtis"
	"github.com/cairn-edge/cairn/tests/vmtest"
)

// boardModules are the out-of-tree kernel modules the board's root gets
// (`cairn image rootfs --module`): on an arm64 board, tpm_tis.ko, the
// driver of the TPM QEMU's virt machine has, which Debian's arm64 kernel
// leaves out (docs/e2e.md, "The arm64 device's TPM"). It is built for the
// kernel of the board's Debian root, which this bootstraps (or finds in the
// cache `cairn image rootfs` uses).
func boardModules(ctx context.Context, b *boards.Board, logf func(string, ...any)) ([]string, error) {
	if b.Arch != "arm64" {
		return nil, nil
	}
	deb, err := rootfs.ForBoard(b, "/etc/apt", Epoch)
	if err != nil {
		return nil, err
	}
	if err := rootfs.EnableArch(b.Arch); err != nil {
		return nil, err
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	root, err := rootfs.Bootstrap(ctx, deb, filepath.Join(uc, "cairn", "rootfs"), logf)
	if err != nil {
		return nil, err
	}
	kernels, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil || len(kernels) != 1 {
		return nil, fmt.Errorf("board %s: want one kernel in %s/lib/modules, found %d (%v)", b.Name, root, len(kernels), err)
	}
	cache, err := vmtest.CacheDir()
	if err != nil {
		return nil, err
	}
	ko, err := tpmtis.Build(ctx, kernels[0].Name(), cache, logf)
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", b.Name, err)
	}
	return []string{ko}, nil
}
