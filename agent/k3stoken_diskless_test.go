package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/tpm"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/images/footer"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/fakedevice"
)

// bootDiskless turns d into the same machine (same TPM, same /var) booted
// diskless over the network: the slot image holding f's release on loop0,
// the release key's public half where the image keeps it. The image
// carries f as it is, so a footer cut back to the policies of an older
// release stays that way.
func (d *tokenDevice) bootDiskless(t *testing.T, f *footer.Footer) {
	t.Helper()
	root := fakedevice.Root(t, fakedevice.NetbootCmdline, "253:0", fakedevice.Netboot()...)
	boot, err := partitions.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if !boot.Diskless || boot.Slot != partitions.SlotNetwork {
		t.Fatalf("fake network boot discovered as %+v", boot)
	}
	pub := filepath.Join(root, agent.DefaultReleaseKeyPath)
	if err := os.MkdirAll(filepath.Dir(pub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, readFile(t, filepath.Join(d.root, agent.DefaultReleaseKeyPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	signedslot.Put(t, filepath.Join(root, boot.Device), f)
	d.root, d.boot, d.footer = root, boot, f
}

// disklessBoot is what cairn-init measures for f's release booted diskless.
func disklessBoot(t *testing.T, f *footer.Footer) tpm.SlotIdentity {
	t.Helper()
	id, err := f.Identity(string(partitions.SlotNetwork))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestK3sTokenUnsealsOnADisklessBoot: a token sealed on a boot from disk
// unseals when the same machine boots the same signed release diskless,
// with the release's pxe approval; a modified image booted diskless gets
// no token, and neither does a release signed before diskless boots were
// approved (no pxe policy in its footer).
func TestK3sTokenUnsealsOnADisklessBoot(t *testing.T) {
	for _, mc := range machines {
		t.Run(mc.name, func(t *testing.T) {
			d := newTokenDevice(t, mc.start(t))
			st, cfg, err := d.powerOn(t, slotB(t, d.footer))
			if err != nil {
				t.Fatalf("boot from disk: %v", err)
			}
			d.checkUnsealed(t, st, cfg)
			sealed := readFile(t, d.files.Sealed)
			release := d.footer

			d.bootDiskless(t, release)
			st, cfg, err = d.powerOn(t, disklessBoot(t, release))
			if err != nil {
				t.Fatalf("diskless boot of the signed release: %v", err)
			}
			d.checkUnsealed(t, st, cfg)
			if !bytes.Equal(readFile(t, d.files.Sealed), sealed) {
				t.Error("the diskless boot sealed the token again")
			}

			// The image on the network boot server modified: cairn-init
			// measures another root hash than the signed release has.
			tampered := disklessBoot(t, release)
			tampered.RootHash[7] ^= 0x01
			d.checkWithheld(t, tampered, sealed, "slot pxe, release 1.3.0")

			// A release signed with approvals for A and B only.
			older := *release
			older.Policies = release.Policies[:footer.LegacyPolicies]
			d.bootDiskless(t, &older)
			d.checkWithheld(t, disklessBoot(t, &older), sealed, "slot pxe, release 1.3.0")
		})
	}
}
