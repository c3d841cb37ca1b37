package e2e

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestEmulatedDevices runs scenarios 1 to 9 of docs/e2e.md on four
// emulated devices in two lanes, so that both of CI's cores are busy from
// the start and the longest lane sets the time. The x86 chain, by far the
// longest, has a lane to itself from the start; PXE, arm64 and the device
// with its own k3s server take turns in the other lane. go test's
// -parallel (GOMAXPROCS by default) caps the lanes running at once.
func TestEmulatedDevices(t *testing.T) {
	t.Run("x86_chain", func(t *testing.T) {
		t.Parallel()
		updatesRollsBackAndRecovers(t)
	})
	t.Run("one_scenario_devices", func(t *testing.T) {
		t.Parallel()
		t.Run("pxe", pxeDisklessAndInstall)
		t.Run("arm64", arm64UBootFirstBootAndBadRelease)
		t.Run("local_server", localServerFirstBoot)
	})
}

// updatesRollsBackAndRecovers boots a qemu-x86_64 device (OVMF, GRUB,
// swtpm) from a disk with 1.0.0 and takes it through scenarios 1 to 6 on
// the same disk, asserting on what the device itself prints:
// `cairn-agent status --output json` and `cairn-agent attest`.
func updatesRollsBackAndRecovers(t *testing.T) {
	require(t)
	lab, tm := startLab(t, "k3s server on the host, channel, device", BuildOptions{Board: "qemu-x86_64", Releases: ChainReleases}, NewLab)
	runChain(t, tm, []scenario{ // scenarios 1-6 of docs/e2e.md, in order on one disk
		{"1_first_boot", lab.FirstBoot, 12 * time.Minute},
		{"2_update_commits", lab.UpdateCommits, 15 * time.Minute},
		{"3_bad_release_rolls_back", lab.BadReleaseRollsBack, 20 * time.Minute},
		{"4_kernel_panic_falls_back", lab.KernelPanicFallsBack, 20 * time.Minute},
		{"5_tampered_release_refused", lab.TamperedReleaseIsRefused, 10 * time.Minute},
		{"6_power_cut_resumes", lab.PowerCutResumes, 20 * time.Minute},
	})
}

// scenario is one step of a chain run on the same device.
type scenario struct {
	name    string
	run     func(context.Context) (*Step, error)
	timeout time.Duration
}

// startLab builds (or finds) the artifacts opts name and starts a lab
// with newLab, narrating and timing into t, and showing the device's
// console if the test fails.
func startLab(t *testing.T, what string, opts BuildOptions,
	newLab func(context.Context, *Artifacts, string, io.Writer) (*Lab, error)) (*Lab, *timings) {
	t.Helper()
	tm := newTimings(t)
	start := time.Now()
	art := build(t, opts)
	built := "build releases, disk and PXE bundle"
	if art.PXE == "" {
		built = "build releases and disk"
	}
	tm.add(map[bool]string{true: "build (cached)", false: built}[art.Took == 0], time.Since(start))
	start = time.Now()
	lab, err := newLab(context.Background(), art, t.TempDir(), consoleForDebugging())
	if err != nil {
		t.Fatal(err)
	}
	lab.Logf, lab.Timing = t.Logf, func(step string, d time.Duration) { tm.add("  "+step, d) }
	t.Cleanup(func() {
		if t.Failed() && lab.Device.Machine != nil {
			t.Logf("console:\n%s", lab.Device.Machine.Console().Excerpt(10000, 12000))
		}
		lab.Close()
	})
	tm.add(what, time.Since(start))
	return lab, tm
}

// runChain runs the scenarios in order as subtests, each within its
// timeout, and stops at the first that fails: each starts from what the
// previous one left.
func runChain(t *testing.T, tm *timings, scenarios []scenario) {
	t.Helper()
	for _, s := range scenarios {
		start := time.Now()
		ok := t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			step, err := s.run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s in slot %s after %v", step.Release, step.Result, step.Slot, step.Took.Round(time.Second))
		})
		tm.add("scenario "+s.name, time.Since(start))
		if !ok {
			t.Fatalf("scenario %s failed; the chain stops here", s.name)
		}
	}
}

// localServerFirstBoot is scenario 9 of docs/e2e.md: a qemu-x86_64
// device whose k3s is a server on the device itself, kube-apiserver and
// etcd inside the emulated guest, goes through a first boot.
func localServerFirstBoot(t *testing.T) {
	require(t)
	lab, tm := startLab(t, "channel, device with its own k3s server",
		BuildOptions{Board: "qemu-x86_64", Releases: LocalServerReleases, LocalServer: true}, NewLocalServerLab)
	runChain(t, tm, []scenario{ // kube-apiserver starting under TCG: a generous timeout
		{"9_local_server", lab.LocalServerBoot, 20 * time.Minute},
	})
}
