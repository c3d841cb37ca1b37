package update

import (
	"fmt"
	"testing"
)

const pinnedBucket = 71

func TestRolloutBucketIsStableAndSpread(t *testing.T) {
	// Pinned: a change here reshuffles every fleet mid-rollout.
	if b := RolloutBucket("0123456789abcdef", "1.2.0"); b != pinnedBucket {
		t.Fatalf("bucket of a known device = %d, want %d", b, pinnedBucket)
	}
	const devices = 10000
	for _, pct := range []int{0, 1, 10, 50, 100} {
		in := 0
		for i := range devices {
			if InRollout(fmt.Sprintf("%032x", i), "1.2.0", pct) {
				in++
			}
		}
		want := devices * pct / 100
		t.Logf("rollout %d%%: %d of %d devices", pct, in, devices)
		if d := in - want; d < -devices/100 || d > devices/100 {
			t.Errorf("rollout %d%%: %d of %d devices take it, want %d ± 1%%", pct, in, devices, want)
		}
	}
	// Another release reshuffles the fleet: the first 10% are not always
	// the same devices.
	same := 0
	for i := range devices {
		id := fmt.Sprintf("%032x", i)
		if InRollout(id, "1.2.0", 10) && InRollout(id, "1.3.0", 10) {
			same++
		}
	}
	if same > devices/50 {
		t.Errorf("%d devices are in the first 10%% of both releases, want about 1%%", same)
	}
}
