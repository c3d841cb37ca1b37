package e2e

import (
	"context"
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
	tm := newTimings(t)
	start := time.Now()
	art := build(t, "qemu-x86_64")
	tm.add(map[bool]string{true: "build (cached)", false: "build releases, disk and PXE bundle"}[art.Took == 0], time.Since(start))
	start = time.Now()
	lab, err := NewPXELab(context.Background(), art, t.TempDir(), consoleForDebugging())
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
	tm.add("k3s server, channel, PXE server, empty device", time.Since(start))
	for _, s := range []struct {
		name string
		run  func(context.Context) (*Step, error)
	}{
		{"diskless", lab.DisklessBoot},
		{"install", lab.InstallBoot},
	} {
		start := time.Now()
		ok := t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			step, err := s.run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s in slot %s after %v", step.Release, step.Result, step.Slot, step.Took.Round(time.Second))
		})
		tm.add("scenario 7 "+s.name, time.Since(start))
		if !ok {
			t.Fatalf("scenario 7 %s failed; the install is not tried", s.name)
		}
	}
}
