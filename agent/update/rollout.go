package update

import (
	"crypto/sha256"
	"encoding/binary"
)

// RolloutBucket places a device in one of 100 buckets for a release. The
// bucket is stable for a device and release, and independent between
// releases, so the same devices do not always go first.
func RolloutBucket(machineID, version string) int {
	h := sha256.Sum256([]byte("cairn-rollout\x00" + machineID + "\x00" + version))
	return int(binary.BigEndian.Uint64(h[:8]) % 100)
}

// InRollout reports whether the device takes a release rolled out to
// percent of the fleet.
func InRollout(machineID, version string, percent int) bool {
	return RolloutBucket(machineID, version) < percent
}
