package k3s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// k3sDoubleScript is a test double standing in for a k3s binary of one
// version: "server" records its schema in the datastore the first time
// this version runs on it (as a k3s upgrade migrates the datastore) and runs
// until killed; "etcd-snapshot save" and "server --cluster-reset" copy the
// etcd data the way k3s's commands save and restore it.
const k3sDoubleScript = `#!/bin/sh
# Test double standing in for k3s %[1]s.
V=%[1]s
DATA=%[2]s
DB=$DATA/server/db
case "$1" in
etcd-snapshot)
	while [ $# -gt 0 ]; do case "$1" in --name) n=$2; shift;; --dir) d=$2; shift;; esac; shift; done
	cp "$DB/etcd/member" "$d/$n"; exit 0;;
server|agent)
	for a in "$@"; do case "$a" in --cluster-reset-restore-path=*) cp "${a#*=}" "$DB/etcd/member"; exit 0;; esac; done
	if [ -d "$DB/etcd" ]; then grep -q "schema $V" "$DB/etcd/member" || echo "schema $V" >> "$DB/etcd/member"; fi
	if [ -f "$DB/state.db" ]; then
		grep -q "schema $V" "$DB/state.db" || echo "schema $V" >> "$DB/state.db"
		echo "wal of $V" > "$DB/state.db-wal"
	fi
	echo "$V" > "$DATA/running-version"
	exec sleep 100000;;
esac
exit 64
`

type upgradeFixture struct {
	dir, data string
	up        *Upgrader
	runner    *ChildRunner
}

func writeDouble(t *testing.T, dir, data, version string) string {
	t.Helper()
	p := filepath.Join(dir, "download-"+version)
	if err := os.WriteFile(p, []byte(fmt.Sprintf(k3sDoubleScript, version, data)), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// newUpgradeFixture runs the image's k3s (version from) on a datastore of
// the given kind; Ready passes only for k3s versions in good.
func newUpgradeFixture(t *testing.T, role Role, datastore, from string, good ...string) *upgradeFixture {
	t.Helper()
	dir := t.TempDir()
	f := &upgradeFixture{dir: dir, data: filepath.Join(dir, "k3s-data")}
	db := filepath.Join(f.data, "server", "db")
	os.MkdirAll(f.data, 0o700)
	switch datastore {
	case DatastoreSQLite:
		os.MkdirAll(db, 0o700)
		os.WriteFile(filepath.Join(db, "state.db"), []byte("SQLite format 3\x00 rows of the cluster\nschema "+from+"\n"), 0o600)
	case DatastoreEtcd:
		os.MkdirAll(filepath.Join(db, "etcd"), 0o700)
		os.WriteFile(filepath.Join(db, "etcd", "member"), []byte("etcd data\nschema "+from+"\n"), 0o600)
	}
	bins := Binaries{Image: writeDouble(t, dir, f.data, from), ImageVersion: from,
		Dir: filepath.Join(dir, "var", "bin"), Link: filepath.Join(dir, "var", "k3s")}
	if err := bins.Boot(); err != nil {
		t.Fatal(err)
	}
	f.runner = NewChildRunner(Command{Path: bins.Link, Args: []string{string(role)}}, filepath.Join(dir, "runner.state"), filepath.Join(dir, "k3s.log"))
	f.runner.StopTimeout = 10 * time.Second
	f.up = &Upgrader{Role: role, Runner: f.runner, Binaries: bins, HealthTimeout: 300 * time.Millisecond,
		Ready: func(ctx context.Context) error {
			for {
				v, _ := os.ReadFile(filepath.Join(f.data, "running-version"))
				running := strings.TrimSpace(string(v))
				_, linked, _ := f.up.Binaries.Current()
				for _, g := range good {
					if running == g && linked == g {
						return nil
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("node NotReady: KubeletNotReady (running %q)", running)
				case <-time.After(5 * time.Millisecond):
				}
			}
		},
		ServerVersions: func(context.Context) ([]string, error) { return nil, nil },
	}
	if role == RoleServer {
		f.up.Snapshots = &Snapshotter{DataDir: f.data, Dir: filepath.Join(dir, "var", "snapshots"), Keep: 3, Binary: bins.Link}
	}
	if err := f.runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.runner.Stop(context.Background()) })
	waitFor(t, "k3s "+from, func() bool { return f.running() == from })
	return f
}

func (f *upgradeFixture) running() string {
	v, _ := os.ReadFile(filepath.Join(f.data, "running-version"))
	return strings.TrimSpace(string(v))
}

func (f *upgradeFixture) read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.data, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUpgradeSucceedsAndKeepsPreviousBinary(t *testing.T) {
	const from, to = "v1.30.2+k3s1", "v1.31.1+k3s1"
	f := newUpgradeFixture(t, RoleServer, DatastoreSQLite, from, from, to)
	res, err := f.up.Upgrade(context.Background(), writeDouble(t, f.dir, f.data, to), to)
	if err != nil {
		t.Fatalf("upgrade: %v (%+v)", err, res)
	}
	if res.RolledBack || res.From != from || res.To != to || res.Snapshot == "" {
		t.Fatalf("result %+v", res)
	}
	if _, v, _ := f.up.Binaries.Current(); v != to || f.running() != to {
		t.Fatalf("link at %s, running %s; want %s", v, f.running(), to)
	}
	if db := f.read(t, "server/db/state.db"); !bytes.Contains(db, []byte("schema "+to)) {
		t.Fatalf("the new k3s did not run on the datastore: %q", db)
	}
	snaps, _ := f.up.Snapshots.List()
	if len(snaps) != 1 || snaps[0].K3sVersion != from || snaps[0].Datastore != DatastoreSQLite {
		t.Fatalf("snapshots %+v, want one sqlite snapshot of %s", snaps, from)
	}
}

func TestUpgradeFailureRestoresBinaryAndDatastore(t *testing.T) {
	const from, bad = "v1.30.2+k3s1", "v1.31.0+k3s1"
	for _, ds := range []string{DatastoreSQLite, DatastoreEtcd} {
		t.Run(ds, func(t *testing.T) {
			f := newUpgradeFixture(t, RoleServer, ds, from, from)
			dbFile := map[string]string{DatastoreSQLite: "server/db/state.db", DatastoreEtcd: "server/db/etcd/member"}[ds]
			before := f.read(t, dbFile)
			res, err := f.up.Upgrade(context.Background(), writeDouble(t, f.dir, f.data, bad), bad)
			if !errors.Is(err, ErrRolledBack) || !res.RolledBack {
				t.Fatalf("upgrade to a k3s that never gets ready: %v (%+v), want ErrRolledBack", err, res)
			}
			if !strings.Contains(err.Error(), "NotReady") {
				t.Errorf("error %q does not carry the readiness reason", err)
			}
			if _, v, _ := f.up.Binaries.Current(); v != from {
				t.Fatalf("link at %s after rollback, want %s", v, from)
			}
			waitFor(t, "the old k3s", func() bool { return f.running() == from })
			if after := f.read(t, dbFile); !bytes.Equal(after, before) {
				t.Fatalf("datastore after rollback:\n%q\nwant the snapshot's\n%q", after, before)
			}
			if ds == DatastoreSQLite {
				if _, err := os.Stat(filepath.Join(f.data, "server/db/state.db-wal")); err == nil {
					if wal := f.read(t, "server/db/state.db-wal"); bytes.Contains(wal, []byte(bad)) {
						t.Fatal("the failed version's WAL survived the restore")
					}
				}
			}
		})
	}
}

func TestAgentWaitsForServers(t *testing.T) {
	const from, to = "v1.30.2+k3s1", "v1.31.1+k3s1"
	f := newUpgradeFixture(t, RoleAgent, "", from, from, to)
	servers := []string{"v1.31.1+k3s1", "v1.30.2+k3s1"}
	f.up.ServerVersions = func(context.Context) ([]string, error) { return servers, nil }
	before, _ := f.runner.Status(context.Background())
	bin := writeDouble(t, f.dir, f.data, to)
	if _, err := f.up.Upgrade(context.Background(), bin, to); !errors.Is(err, ErrServersBehind) {
		t.Fatalf("upgrade with a server behind: %v, want ErrServersBehind", err)
	}
	if after, _ := f.runner.Status(context.Background()); after.PID != before.PID {
		t.Fatal("k3s was restarted although the agent had to wait")
	}
	if _, v, _ := f.up.Binaries.Current(); v != from {
		t.Fatalf("link switched to %s while waiting", v)
	}
	servers = []string{"v1.31.1+k3s1", "v1.32.0+k3s1"}
	if res, err := f.up.Upgrade(context.Background(), bin, to); err != nil || f.running() != to {
		t.Fatalf("upgrade once servers are ahead: %v (%+v), running %s", err, res, f.running())
	}
}

func TestUpgradeRefusesDowngrade(t *testing.T) {
	f := newUpgradeFixture(t, RoleServer, DatastoreSQLite, "v1.31.1+k3s1", "v1.31.1+k3s1")
	_, err := f.up.Upgrade(context.Background(), writeDouble(t, f.dir, f.data, "v1.30.2+k3s1"), "v1.30.2+k3s1")
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("downgrade: %v, want ErrDowngrade", err)
	}
}

func TestBootPrefersNewerImageBinary(t *testing.T) {
	dir := t.TempDir()
	b := Binaries{Image: "/usr/bin/k3s", ImageVersion: "v1.31.1+k3s1", Dir: filepath.Join(dir, "bin"), Link: filepath.Join(dir, "k3s")}
	staged := filepath.Join(b.Dir, "k3s-v1.30.2+k3s1")
	os.MkdirAll(b.Dir, 0o755)
	os.WriteFile(staged, nil, 0o755)
	b.Switch(staged)
	if err := b.Boot(); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := b.Current(); p != b.Image {
		t.Fatalf("boot kept the older staged %s over the image's newer k3s", p)
	}
	newer := filepath.Join(b.Dir, "k3s-v1.32.0+k3s1")
	os.WriteFile(newer, nil, 0o755)
	b.Switch(newer)
	if err := b.Boot(); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := b.Current(); p != newer {
		t.Fatalf("boot dropped the newer staged k3s for %s", p)
	}
}
