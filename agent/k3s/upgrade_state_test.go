package k3s

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func TestUpgradeStateRemembersARolledBackVersion(t *testing.T) {
	const from, bad, good = "v1.30.2+k3s1", "v1.31.0+k3s1", "v1.31.1+k3s1"
	f := newUpgradeFixture(t, RoleServer, DatastoreSQLite, from, from, good)
	path := filepath.Join(f.dir, "var", "upgrade.json")
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	record := func(version string) {
		t.Helper()
		st, err := LoadUpgradeState(path)
		if err != nil {
			t.Fatal(err)
		}
		st.Staged = version
		res, err := f.up.Upgrade(context.Background(), writeDouble(t, f.dir, f.data, version), version)
		st.Record(at, res, err)
		if err := st.Save(path); err != nil {
			t.Fatal(err)
		}
	}

	record(bad)
	st, err := LoadUpgradeState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsBad(bad) || st.Last.Outcome != OutcomeRolledBack || st.Last.Snapshot == "" || st.Staged != "" {
		t.Fatalf("after a rollback: %+v, last %+v", st, st.Last)
	}
	if !strings.Contains(st.Bad[0].Reason, "NotReady") {
		t.Errorf("bad version's reason %q lacks the readiness reason", st.Bad[0].Reason)
	}

	record(good)
	st, _ = LoadUpgradeState(path)
	if st.Last.Outcome != OutcomeUpgraded || st.Last.From != from || st.Last.To != good || !st.IsBad(bad) || st.IsBad(good) {
		t.Fatalf("after an upgrade: %+v, last %+v", st, st.Last)
	}
	if s := st.Last.Summary(); s != "upgraded v1.30.2+k3s1 → v1.31.1+k3s1 at 2026-03-04T05:06:07Z" {
		t.Errorf("summary %q", s)
	}
}

func TestUpgradeStateWaitingKeepsTheStagedVersion(t *testing.T) {
	var st UpgradeState
	st.Staged = "v1.31.1+k3s1"
	st.Record(time.Now(), Result{From: "v1.30.2+k3s1", To: "v1.31.1+k3s1"}, ErrServersBehind)
	if st.Staged == "" || st.Last.Outcome != OutcomeWaiting || len(st.Bad) != 0 {
		t.Fatalf("waiting for servers: %+v", st)
	}
}

func TestLoadUpgradeStateRefusesADamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "upgrade.json")
	if st, err := LoadUpgradeState(path); err != nil || st.Last != nil {
		t.Fatalf("missing file: %+v, %v", st, err)
	}
	os.WriteFile(path, []byte(`{"staged": "v1`), 0o644)
	if _, err := LoadUpgradeState(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged file: %v, want an error naming it", err)
	}
}

func TestNewerComparesK3sVersions(t *testing.T) {
	for _, tc := range []struct {
		cand, cur string
		want      bool
	}{
		{"v1.31.1+k3s1", "v1.30.2+k3s1", true},
		{"v1.30.2+k3s1", "v1.31.1+k3s1", false},
		{"v1.31.1+k3s1", "v1.31.1+k3s1", false},
		{"v1.31.1+k3s2", "", false},
		{"nonsense", "v1.30.2+k3s1", false},
	} {
		if got := Newer(tc.cand, tc.cur); got != tc.want {
			t.Errorf("Newer(%q, %q) = %v", tc.cand, tc.cur, got)
		}
	}
}

func TestServerVersionsListsTheServerNodes(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "versions-server")
	worker := k3stest.StartAgent(t, s, "versions-worker")
	waitReady(t, serverProbe(s))
	waitReady(t, agentProbe(worker))
	bin, _ := k3stest.Binary(t)
	want, err := BinaryVersion(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ServerVersions(context.Background(), adminClient(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{want}) {
		t.Fatalf("server versions %v, want the one server at %s (k3s --version)", got, want)
	}
}

func TestBinaryVersionRefusesWhatIsNotK3s(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k3s")
	os.WriteFile(p, []byte("#!/bin/sh\necho hello\n"), 0o755)
	if v, err := BinaryVersion(context.Background(), p); err == nil {
		t.Fatalf("version %q of a binary that is not k3s", v)
	}
}
