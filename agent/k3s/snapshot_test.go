package k3s

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSQLiteSnapshotsAreKeptAndRestoreExactBytes(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "server", "db")
	os.MkdirAll(db, 0o700)
	files := map[string][]byte{
		"state.db":     append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xa5, 0, 7}, 40000)...),
		"state.db-wal": []byte("wal frames"),
		"state.db-shm": make([]byte, 32768),
	}
	for n, b := range files {
		os.WriteFile(filepath.Join(db, n), b, 0o600)
	}
	clock := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	s := &Snapshotter{DataDir: filepath.Join(dir, "data"), Dir: filepath.Join(dir, "snapshots"), Keep: 2,
		Now: func() time.Time { clock = clock.Add(time.Hour); return clock }}
	ctx := context.Background()
	first, err := s.Take(ctx, "v1.30.2+k3s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Files) != 3 || first.Datastore != DatastoreSQLite {
		t.Fatalf("snapshot %+v, want the three SQLite files", first)
	}
	os.WriteFile(filepath.Join(db, "state.db"), []byte("SQLite format 3\x00 later"), 0o600)
	second, _ := s.Take(ctx, "v1.30.2+k3s1")
	third, err := s.Take(ctx, "v1.30.2+k3s1")
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := s.List()
	if err != nil || len(snaps) != 2 || snaps[0].Name != second.Name || snaps[1].Name != third.Name {
		t.Fatalf("kept %v (%v), want the last two: %s, %s", names(snaps), err, second.Name, third.Name)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Fatalf("oldest snapshot still on disk: %v", err)
	}

	// A power cut mid-write left a newer WAL and a broken database.
	os.WriteFile(filepath.Join(db, "state.db"), []byte("garbage"), 0o600)
	os.Remove(filepath.Join(db, "state.db-shm"))
	os.WriteFile(filepath.Join(db, "state.db-journal"), []byte("stale"), 0o600)
	if err := s.Restore(ctx, second); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"state.db": []byte("SQLite format 3\x00 later"), "state.db-wal": files["state.db-wal"], "state.db-shm": files["state.db-shm"]}
	got, _ := filepath.Glob(filepath.Join(db, "state.db*"))
	if len(got) != len(want) {
		t.Fatalf("after restore the db dir holds %v", got)
	}
	for n, b := range want {
		if have, _ := os.ReadFile(filepath.Join(db, n)); !bytes.Equal(have, b) {
			t.Errorf("%s after restore differs from the snapshot", n)
		}
	}
}

func TestCorruptSnapshotIsNotRestored(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "server", "db")
	os.MkdirAll(db, 0o700)
	os.WriteFile(filepath.Join(db, "state.db"), []byte("good data"), 0o600)
	s := &Snapshotter{DataDir: filepath.Join(dir, "data"), Dir: filepath.Join(dir, "snapshots"), Keep: 5}
	snap, err := s.Take(context.Background(), "v1.30.2+k3s1")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(snap.Dir, "state.db"), []byte("bit rot"), 0o600)
	os.WriteFile(filepath.Join(db, "state.db"), []byte("current data"), 0o600)
	if err := s.Restore(context.Background(), snap); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Fatalf("restore of a damaged snapshot: %v, want ErrSnapshotCorrupt", err)
	}
	if b, _ := os.ReadFile(filepath.Join(db, "state.db")); string(b) != "current data" {
		t.Fatal("a damaged snapshot replaced the datastore")
	}
}

func TestNoDatastoreOnAgents(t *testing.T) {
	s := &Snapshotter{DataDir: t.TempDir(), Dir: t.TempDir()}
	if _, err := s.Take(context.Background(), "v1"); !errors.Is(err, ErrNoDatastore) {
		t.Fatalf("Take without a datastore: %v, want ErrNoDatastore", err)
	}
}

func names(snaps []*Snapshot) []string {
	var out []string
	for _, s := range snaps {
		out = append(out, s.Name)
	}
	return out
}
