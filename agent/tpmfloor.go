package agent

import (
	"context"
	"fmt"

	"github.com/Masterminds/semver/v3"

	"github.com/cairn-edge/cairn/partitions"
)

// floorBits is the width of each of major, minor and patch in FloorNumber.
const floorBits = 21

// FloorNumber is a release version as the TPM's version floor counts it:
// major, minor and patch in 21 bits each, most significant first.
// Pre-releases count as their release, so the TPM floor never refuses a
// release the floor file on /var (full semantic version order) accepts.
func FloorNumber(v *semver.Version) (uint64, error) {
	const limit = 1 << floorBits
	if v.Major() >= limit || v.Minor() >= limit || v.Patch() >= limit {
		return 0, fmt.Errorf("version floor: %s: major, minor and patch must each be below %d", v, uint64(limit))
	}
	return v.Major()<<(2*floorBits) | v.Minor()<<floorBits | v.Patch(), nil
}

// RaiseTPMFloor raises the version floor in the TPM's NV index to the
// release v the device just committed, booted from boot's slot. The TPM
// accepts the write only under the PCR policy the release key signed for
// this slot, which the slot's footer carries. Without a TPM it does nothing:
// the floor file on /var is then the only floor. Call it after the commit
// (boot state marked good, floor file raised), never before.
func (m MeasuredBoot) RaiseTPMFloor(ctx context.Context, boot *partitions.Boot, v *semver.Version) error {
	n, err := FloorNumber(v)
	if err != nil {
		return err
	}
	t, err := m.openTPM(ctx)
	if err != nil || t == nil {
		return err
	}
	defer t.Close()
	key, err := m.releaseKey()
	if err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	f, err := m.signedFooter(boot.Device)
	if err != nil {
		return fmt.Errorf("version floor: %w", err)
	}
	if f.Manifest.Version != v.String() {
		return fmt.Errorf("version floor: committed %s, but slot %s holds %s", v, boot.Slot, f.Manifest.Version)
	}
	if err := t.RaiseFloor(n, key, f.PolicySignatures()); err != nil {
		return fmt.Errorf("version floor: release %s: %w", v, err)
	}
	return nil
}
