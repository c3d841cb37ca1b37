package e2e

import (
	"testing"
	"time"
)

// TestPXEDisklessAndInstall is scenario 7 of docs/e2e.md: a device with an
// empty disk boots over the network (QEMU's TFTP hands out the iPXE
// script, the host serves the bundle over HTTP), once diskless and once
// installing onto its disk, after which it boots from that disk; both
// report what scenario 1 asserts.
func TestPXEDisklessAndInstall(t *testing.T) {
	require(t)
	t.Parallel() // its own device: it runs beside the other QEMU scenarios
	lab, tm := startLab(t, "k3s server, channel, PXE server, empty device", "qemu-x86_64", ChainReleases, NewPXELab)
	runChain(t, tm, []scenario{
		{"7_diskless", lab.DisklessBoot, 15 * time.Minute},
		{"7_install", lab.InstallBoot, 15 * time.Minute},
	})
}
