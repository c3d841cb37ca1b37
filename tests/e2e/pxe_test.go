package e2e

import (
	"testing"
	"time"
)

// pxeDisklessAndInstall is scenario 7 of docs/e2e.md: a device with an
// empty disk boots over the network (QEMU's TFTP hands out the iPXE
// script, the host serves the bundle over HTTP), once diskless and once
// installing onto its disk, after which it boots from that disk; both
// report what scenario 1 asserts.
func pxeDisklessAndInstall(t *testing.T) {
	require(t)
	lab, tm := startLab(t, "k3s server, channel, PXE server, empty device", BuildOptions{Board: "qemu-x86_64", Releases: ChainReleases}, NewPXELab)
	runChain(t, tm, []scenario{
		{"7_diskless", lab.DisklessBoot, 15 * time.Minute},
		{"7_install", lab.InstallBoot, 15 * time.Minute},
	})
}
