package update

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/cairn-edge/cairn/images/channel"
)

// Each test is one attack from the TUF threat model against a repository
// served over HTTP. The device must refuse it with the error that names
// the attack and write nothing to the slot path.

func refused(t *testing.T, f *fixture, c *Channel, want error) {
	t.Helper()
	_, err := f.attempt(c)
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	t.Logf("refused: %v", err)
	f.slotEmpty()
}

// primed is a fixture whose device has already trusted the current metadata.
func primed(t *testing.T) (*fixture, *Channel) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	c := f.channel()
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestAttackArbitrarySoftwareSignedByAnUntrustedKey(t *testing.T) {
	f, c := primed(t)
	evil, err := channel.GenerateKey(t.TempDir(), "timestamp")
	if err != nil {
		t.Fatal(err)
	}
	ts := f.timestamp()
	ts.Signed.Version++
	f.write("timestamp.json", signBytes(t, ts, evil))
	refused(t, f, c, ErrUntrustedSignature)
}

func TestAttackWrongBoard(t *testing.T) {
	f, c := primed(t)
	f.publish("rpi4", "2.0.0", "stable", 100)
	// A signed targets file that labels the rpi4 release as ours (a
	// publishing mistake or stolen online keys) must not flash an rpi4
	// image into this board's slot.
	ts := f.timestamp()
	snap := f.snapshot(ts.Signed.Meta["snapshot.json"].Version)
	tg := f.targets(snap.Signed.Meta["targets.json"].Version)
	for _, tf := range tg.Signed.Targets {
		cu, _ := channel.ParseCustom(tf.Custom)
		if cu.Board == "rpi4" {
			cu.Board = board
			tf.Custom = cu.Raw()
		}
	}
	f.resign(tg, snap, ts)
	refused(t, f, c, ErrWrongBoard)
}

// resign re-signs targets → snapshot → timestamp with the repository's own
// keys, each one version up.
func (f *fixture) resign(tg *metadata.Metadata[metadata.TargetsType], snap *metadata.Metadata[metadata.SnapshotType], ts *metadata.Metadata[metadata.TimestampType]) {
	tg.Signed.Version++
	tgData := signBytes(f.t, tg, f.keys("targets")...)
	f.write(itoa(tg.Signed.Version)+".targets.json", tgData)
	snap.Signed.Version++
	snap.Signed.Meta["targets.json"] = metaOf(tg.Signed.Version, tgData)
	snapData := signBytes(f.t, snap, f.keys("snapshot")...)
	f.write(itoa(snap.Signed.Version)+".snapshot.json", snapData)
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = metaOf(snap.Signed.Version, snapData)
	f.write("timestamp.json", signBytes(f.t, ts, f.keys("timestamp")...))
}

func TestAttackRollbackRoot(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	if _, err := f.repo.RotateKeys("timestamp", 1, 1); err != nil { // root v2
		t.Fatal(err)
	}
	c := f.channel()
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The mirror offers root v1 as the next version.
	f.write("3.root.json", f.read("1.root.json"))
	refused(t, f, c, ErrRollback)
}

func TestAttackRollbackTimestamp(t *testing.T) {
	f, c := primed(t)
	old := f.read("timestamp.json")
	f.publish(board, "1.1.0", "stable", 100)
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.write("timestamp.json", old)
	refused(t, f, c, ErrRollback)
}

func TestAttackRollbackSnapshot(t *testing.T) {
	f, c := primed(t)
	oldSnap := f.timestamp().Signed.Meta["snapshot.json"]
	f.publish(board, "1.1.0", "stable", 100)
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// With the timestamp key, a newer timestamp pointing at the old snapshot.
	ts := f.timestamp()
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = oldSnap
	f.write("timestamp.json", signBytes(t, ts, f.keys("timestamp")...))
	refused(t, f, c, ErrRollback)
}

func TestAttackRollbackTargets(t *testing.T) {
	f, c := primed(t)
	ts := f.timestamp()
	oldTargets := f.snapshot(ts.Signed.Meta["snapshot.json"].Version).Signed.Meta["targets.json"]
	f.publish(board, "1.1.0", "stable", 100)
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// With the online keys, a newer snapshot naming the old targets.
	ts = f.timestamp()
	snap := f.snapshot(ts.Signed.Meta["snapshot.json"].Version)
	snap.Signed.Version++
	snap.Signed.Meta["targets.json"] = oldTargets
	snapData := signBytes(t, snap, f.keys("snapshot")...)
	f.write(itoa(snap.Signed.Version)+".snapshot.json", snapData)
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = metaOf(snap.Signed.Version, snapData)
	f.write("timestamp.json", signBytes(t, ts, f.keys("timestamp")...))
	refused(t, f, c, ErrRollback)
}

func TestAttackIndefiniteFreeze(t *testing.T) {
	f, c := primed(t)
	// The mirror keeps serving the same metadata; eight days on, the
	// timestamp (valid seven) has expired.
	f.now = published.Add(8 * 24 * time.Hour)
	refused(t, f, c, ErrFreeze)
}

func TestAttackMixAndMatch(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	f.publish(board, "1.1.0", "stable", 100)
	// The current timestamp and snapshot with the targets of an earlier
	// repository state under the current name.
	v := f.snapshot(f.timestamp().Signed.Meta["snapshot.json"].Version).Signed.Meta["targets.json"].Version
	f.write(itoa(v)+".targets.json", f.read(itoa(v-1)+".targets.json"))
	refused(t, f, f.channel(), ErrMixAndMatch)
}

func TestAttackEndlessData(t *testing.T) {
	t.Run("metadata", func(t *testing.T) {
		f, c := primed(t)
		ts := f.read("timestamp.json")
		f.write("timestamp.json", append(ts, bytes.Repeat([]byte(" "), 1<<20)...))
		refused(t, f, c, ErrEndlessData)
	})
	t.Run("target", func(t *testing.T) {
		f, c := primed(t)
		img := f.imageFile("1.0.0")
		data, _ := os.ReadFile(img)
		os.WriteFile(img, append(data, bytes.Repeat([]byte{0}, 1<<20)...), 0o644)
		refused(t, f, c, ErrEndlessData)
	})
}

func TestAttackFastForwardRecoveryAfterTimestampKeyRotation(t *testing.T) {
	f, c := primed(t)
	// A thief of the timestamp key fast-forwards the device to version 1000.
	ts := f.timestamp()
	ts.Signed.Version = 1000
	f.write("timestamp.json", signBytes(t, ts, f.keys("timestamp")...))
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := f.trustedVersion("timestamp"); v != 1000 {
		t.Fatalf("device trusts timestamp v%d, want the attacker's v1000", v)
	}
	// The repository's next honest timestamp now looks like a rollback...
	f.publish(board, "1.1.0", "stable", 100)
	if _, err := c.Check(context.Background()); !errors.Is(err, ErrRollback) {
		t.Fatalf("honest timestamp after a fast-forward: %v, want ErrRollback", err)
	}
	// ...until the operator rotates the timestamp key: the device drops the
	// fast-forwarded timestamp and recovers.
	if _, err := f.repo.RotateKeys("timestamp", 1, 1); err != nil {
		t.Fatal(err)
	}
	o, err := f.attempt(c)
	if err != nil {
		t.Fatalf("no recovery after rotation: %v", err)
	}
	if v := f.trustedVersion("timestamp"); v >= 1000 || o.Manifest.Version != "1.1.0" {
		t.Fatalf("device trusts timestamp v%d and picked %s, want the honest one and 1.1.0", v, o.Manifest.Version)
	}
}

func TestAttackRootThresholdNotMet(t *testing.T) {
	f := newFixture(t, 2, 2)
	f.publish(board, "1.0.0", "stable", 100)
	// One stolen root key of two signs a new root that trusts the thief.
	root, err := metadata.Root().FromFile(f.repo.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	thief, _ := channel.GenerateKey(t.TempDir(), "root")
	root.Signed.Version++
	root.Signed.Roles["root"].KeyIDs = nil
	root.Signed.Roles["root"].Threshold = 1
	root.Signed.AddKey(thief.Public(), "root")
	f.write("2.root.json", signBytes(t, root, f.keys("root")[0], thief))
	refused(t, f, f.channel(), ErrSignatureThreshold)
}

func TestRootKeyRotationIsFollowed(t *testing.T) {
	f := newFixture(t, 2, 2)
	f.publish(board, "1.0.0", "stable", 100)
	if _, err := f.repo.RotateKeys("root", 3, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.RotateKeys("targets", 1, 1); err != nil {
		t.Fatal(err)
	}
	f.publish(board, "1.1.0", "stable", 100)
	// The device still trusts the root v1 baked into its image.
	o, err := f.attempt(f.channel())
	if err != nil {
		t.Fatal(err)
	}
	if v := f.trustedVersion("root"); v != 3 || o.Manifest.Version != "1.1.0" {
		t.Fatalf("device at root v%d picked %s, want root v3 and 1.1.0", v, o.Manifest.Version)
	}
}

func TestAttackReleaseBelowVersionFloor(t *testing.T) {
	f := newFixture(t, 1, 1)
	f.publish(board, "1.0.0", "stable", 100)
	c := f.channel()
	if err := NewVersionFloor(f.varDir + "/version-floor").Raise(semver.MustParse("1.5.0")); err != nil {
		t.Fatal(err)
	}
	refused(t, f, c, ErrBelowVersionFloor)
}

func TestAttackTruncatedTarget(t *testing.T) {
	f, c := primed(t)
	img := f.imageFile("1.0.0")
	data, _ := os.ReadFile(img)
	os.WriteFile(img, data[:len(data)/2], 0o644)
	refused(t, f, c, ErrTargetTruncated)
}

func TestAttackCorruptedTarget(t *testing.T) {
	f, c := primed(t)
	img := f.imageFile("1.0.0")
	data, _ := os.ReadFile(img)
	data[len(data)/2] ^= 0xff
	os.WriteFile(img, data, 0o644)
	refused(t, f, c, ErrTargetCorrupted)
}
