package e2e

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestDeviceUpdatesRollsBackAndRecovers boots a qemu-x86_64 device (OVMF,
// GRUB, swtpm) from a disk with 1.0.0 and takes it through the scenarios
// of docs/e2e.md on the same disk, asserting on what the device itself
// prints: `cairn-agent status --output json` and `cairn-agent attest`.
func TestDeviceUpdatesRollsBackAndRecovers(t *testing.T) {
	require(t)
	t.Parallel() // its own device: it runs beside the other QEMU scenarios
	lab, tm := startLab(t, "k3s server on the host, channel, device", "qemu-x86_64", ChainReleases, NewLab)
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

// startLab builds (or finds) the board's artifacts of releases and
// starts a lab with newLab, narrating and timing into t, and showing the
// device's console if the test fails.
func startLab(t *testing.T, what, board string, releases []Release,
	newLab func(context.Context, *Artifacts, string, io.Writer) (*Lab, error)) (*Lab, *timings) {
	t.Helper()
	tm := newTimings(t)
	start := time.Now()
	art := build(t, board, releases)
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
			t.Logf("console:\n%s", lab.Device.Machine.Console().Tail(12000))
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
