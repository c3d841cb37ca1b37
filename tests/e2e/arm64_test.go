package e2e

import (
	"testing"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/tests/tpmtis"
)

// Arm64Releases are scenario 8's releases: 1.0.0 ships on the disk, 1.2.0
// never gets its node Ready.
var Arm64Releases = []Release{
	{Version: "1.0.0", Kind: Good},
	{Version: BadRelease, Kind: NeverReady},
}

// arm64UBootFirstBootAndBadRelease is scenario 8 of docs/e2e.md: a
// qemu-aarch64 device (virt, Cortex-A57, Debian's U-Boot, swtpm behind
// tpm-tis-device) goes through scenario 1, with its attestation verified
// on the host, then scenario 3 from there: 1.2.0 goes into slot B, fails the health
// gate, and the device rolls back to 1.0.0 on A by itself.
func arm64UBootFirstBootAndBadRelease(t *testing.T) {
	b, err := boards.Load("qemu-aarch64")
	if err != nil {
		t.Fatal(err)
	}
	requireTools(t, []string{"qemu-system-aarch64", "qemu-aarch64-static", "mmdebstrap", "swtpm", tpmtis.CrossCompile + "gcc", "make", "mkfs.vfat", "mcopy", "mkfs.ext4", "mkimage", "cp", "zstd", "sgdisk"},
		b.MachineFirmware())
	lab, tm := startLab(t, "k3s server on the host, channel, arm64 device", BuildOptions{Board: b.Name, Releases: Arm64Releases}, NewLab)
	runChain(t, tm, []scenario{ // emulated arm64 on shared cores: generous timeouts
		{"8_first_boot", lab.FirstBoot, 15 * time.Minute},
		{"8_bad_release_rolls_back", lab.BadReleaseRollsBack, 25 * time.Minute},
	})
}
