package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/daemon"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// newVersion is the k3s the channel offers in these tests; the image's is
// the stand-in's default.
const newVersion = "v1.36.4+k3s1"

// k3sChannel is a device on OS 1.0.0 with 1.0.0 committed (so the OS is up
// to date), following a channel whose release 1.0.0 carries the k3s
// binary a test publishes, polled every few seconds.
type k3sChannel struct {
	*scenario
	repo     *channel.Repo
	keyFile  string
	data     string // k3s's data dir
	requests atomic.Int64
	k3sGets  atomic.Int64 // requests for the published k3s
}

func newK3sChannel(t *testing.T, role k3s.Role, server *k3stest.Server) *k3sChannel {
	needTools(t, "ip", "dnsmasq", "swtpm", "mkfs.ext4", "go")
	s := &scenario{t: t, dev: newDevice(t, partitions.SlotA), lan: newLAN(t), varDir: t.TempDir(),
		socket: filepath.Join(t.TempDir(), "agent.sock"), clock: &fakeClock{now: time.Unix(0, 0)},
		reboots: rebooter{reasons: make(chan string, 4)}}
	c := &k3sChannel{scenario: s, keyFile: filepath.Join(t.TempDir(), "release.key")}
	pub := s.dev.path(agent.ReleaseKeyPath)
	os.MkdirAll(filepath.Dir(pub), 0o755)
	key, err := channel.GenerateReleaseKey(c.keyFile, pub)
	if err != nil {
		t.Fatal(err)
	}
	signedslot.Write(t, s.dev.path(s.dev.boot.Device), key, "1.0.0", board)
	os.WriteFile(s.dev.path(s.dev.boot.OtherDevice), make([]byte, slotSize), 0o644)
	os.WriteFile(s.dev.path(agent.BoardPath), []byte(board+"\n"), 0o644)
	s.dev.writeGrubEnv(t)
	os.MkdirAll(filepath.Join(s.varDir, "update"), 0o700)
	os.WriteFile(filepath.Join(s.varDir, "update", "version-floor"), []byte("1.0.0\n"), 0o644)

	if c.repo, err = channel.Init(filepath.Join(t.TempDir(), "repo"), channel.InitOptions{RootKeys: 1, RootThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(c.repo.ServeDir()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		if strings.Contains(r.URL.Path, ".k3s-amd64-") {
			c.k3sGets.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	root, err := os.ReadFile(c.repo.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.dev.path(agent.TrustedRootPath), root, 0o644)

	bin, env := k3stest.Binary(t)
	k3sDir := t.TempDir()
	c.data = filepath.Join(k3sDir, "data")
	port := freePorts(t, 5)
	s.admin = filepath.Join(k3sDir, "k3s.yaml")
	s.runners = &runners{dir: filepath.Join(s.varDir, "k3s")}
	s.k3s = daemon.K3sSetup{
		Paths:     k3s.Paths{Config: filepath.Join(k3sDir, "etc/config.yaml"), Registries: filepath.Join(k3sDir, "etc/registries.yaml")},
		Binaries:  k3s.Binaries{Image: bin},
		Env:       env,
		NewRunner: s.runners.new,
		// A failing k3s is rolled back after this long.
		UpgradeTimeout:  20 * time.Second,
		UpgradeInterval: 2 * time.Second,
		SupervisorURL:   fmt.Sprintf("https://127.0.0.1:%d", port), AdminKubeconfig: s.admin,
		KubeletHealthzURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port+4),
		KubeletKubeconfig: filepath.Join(c.data, "agent", "kubelet.kubeconfig"),
	}
	k3sConfig := fmt.Sprintf("    role: server\n    extra_args:\n      - --data-dir=%s\n      - --write-kubeconfig=%s\n      - --https-listen-port=%d\n",
		c.data, s.admin, port)
	if role == k3s.RoleAgent {
		k3sConfig = fmt.Sprintf("    role: agent\n    server: %s\n    token: %s\n    extra_args:\n      - --data-dir=%s\n", server.URL, server.Token, c.data)
	}
	userData := fmt.Sprintf("#cloud-config\ncairn:\n  k3s:\n%s      - --node-name=store-0042\n      - --kubelet-arg=healthz-port=%d\n"+
		"  update:\n    metadata_url: %s\n    auto: true\n", k3sConfig, port+4, srv.URL)
	ud, err := cloudinit.ParseUserData("user-data", []byte(userData))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := cloudinit.ParseNetworkConfig("network-config", []byte("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = &cloudinit.Config{UserData: *ud, Network: nc}
	t.Cleanup(func() { s.runners.stop(t) })
	return c
}

// standinVersion builds the k3s stand-in so that it says it is version.
func standinVersion(t *testing.T, version string) string {
	t.Helper()
	root, err := k3stest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "k3s")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "./tests/k3s-standin")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in as %s: %v\n%s", version, err, b)
	}
	return out
}

// publish puts release 1.0.0 on the channel with k3sBinary for amd64.
func (c *k3sChannel) publish(k3sBinary string) {
	t := c.t
	image, res := buildSlot(t, c.keyFile, "1.0.0")
	releases := t.TempDir()
	if _, err := release.Create(context.Background(), release.CreateOptions{
		Image: image, K3s: map[string]string{"amd64": k3sBinary}, Version: "1.0.0", Board: board, Arch: "amd64",
		VerityRootHash: res.RootHash, OutDir: release.Dir(releases, "1.0.0", board),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.repo.Publish(context.Background(), releases, "1.0.0", "stable", 100); err != nil {
		t.Fatal(err)
	}
}

// plantDatastore gives the server a datastore the upgrade snapshots: the
// stand-in keeps its own etcd elsewhere and leaves this file alone.
func (c *k3sChannel) plantDatastore() []byte {
	content := []byte("SQLite format 3\x00 the cluster before the upgrade\n")
	os.MkdirAll(filepath.Join(c.data, "server", "db"), 0o700)
	if err := os.WriteFile(filepath.Join(c.data, "server", "db", "state.db"), content, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return content
}

func (c *k3sChannel) status(d *daemon.Daemon) func() (*agent.K3sStatus, error) {
	return func() (*agent.K3sStatus, error) {
		st := d.K3sStatus()
		if st == nil {
			return nil, fmt.Errorf("no k3s status yet")
		}
		return st, nil
	}
}

func (c *k3sChannel) kubeletVersion() (string, error) {
	n, err := c.kube().CoreV1().Nodes().Get(context.Background(), "store-0042", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return n.Status.NodeInfo.KubeletVersion, nil
}

func (c *k3sChannel) log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

func TestK3sUpgradeFromTheChannel(t *testing.T) {
	c := newK3sChannel(t, k3s.RoleServer, nil)
	c.publish(standinVersion(t, newVersion))
	before := c.plantDatastore()
	d, _ := c.boot()
	status := c.status(d)
	waitFor(t, "k3s "+newVersion+" running", func() error {
		st, err := status()
		if err == nil && (st.Running != newVersion || !strings.HasPrefix(st.LastUpgrade, k3s.OutcomeUpgraded)) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
	waitFor(t, "the node to report "+newVersion, func() error {
		v, err := c.kubeletVersion()
		if err == nil && v != newVersion {
			err = fmt.Errorf("kubelet version %s", v)
		}
		return err
	})
	if err := c.nodeHas(map[string]string{k3s.LabelOSVersion: "1.0.0", k3s.LabelSlot: "a"}, true)(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(c.data, "server", "db", "state.db")); err != nil || !bytes.Equal(got, before) {
		t.Fatalf("datastore after the upgrade: %q, %v", got, err)
	}
	snaps, err := (&k3s.Snapshotter{Dir: filepath.Join(c.varDir, "k3s", "snapshots")}).List()
	if err != nil || len(snaps) != 1 || snaps[0].K3sVersion != "v1.36.3+k3s1" {
		t.Fatalf("snapshots %+v (%v), want one taken of the image's k3s", snaps, err)
	}
	var text bytes.Buffer
	(&agent.Status{K3s: d.K3sStatus()}).WriteText(&text)
	if !strings.Contains(text.String(), "k3s: running "+newVersion+"; last upgrade: upgraded v1.36.3+k3s1 → "+newVersion) {
		t.Errorf("status text:\n%s", text.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(c.varDir, "k3s", "download")); len(ents) != 0 {
		t.Errorf("downloads left: %v", ents)
	}
}

// brokenK3s is a k3s release that says it is version, damages the
// datastore (as a migration that went wrong) and exits.
func brokenK3s(t *testing.T, data, version string) string {
	p := filepath.Join(t.TempDir(), "k3s")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in --version) echo \"k3s version %s (broken)\"; exit 0;; esac\n"+
		"echo \"schema %s\" >> %s/server/db/state.db\necho \"fatal: broken release\" >&2\nexit 1\n", version, version, data)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestK3sUpgradeThatNeverGetsReadyRollsBackAndIsNotRetried(t *testing.T) {
	const bad = "v1.36.9+k3s1"
	c := newK3sChannel(t, k3s.RoleServer, nil)
	c.publish(brokenK3s(t, c.data, bad))
	before := c.plantDatastore()
	d, _ := c.boot()
	status := c.status(d)
	waitFor(t, "the rollback", func() error {
		st, err := status()
		if err == nil && !strings.HasPrefix(st.LastUpgrade, k3s.OutcomeRolledBack) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
	st, _ := status()
	if st.Running != "v1.36.3+k3s1" || len(st.Bad) != 1 || st.Bad[0] != bad || st.Staged != "" {
		t.Fatalf("after the rollback: %+v", st)
	}
	if got, _ := os.ReadFile(filepath.Join(c.data, "server", "db", "state.db")); !bytes.Equal(got, before) {
		t.Fatalf("datastore after the rollback: %q, want the snapshot's %q", got, before)
	}
	waitFor(t, "the node Ready on the old k3s", func() error {
		return k3s.ServerProbe{SupervisorURL: c.k3s.SupervisorURL, AdminKubeconfig: c.admin, NodeName: "store-0042"}.Check(context.Background())
	})

	// Later checks see the same binary and leave it alone.
	gets, seen := c.k3sGets.Load(), c.requests.Load()
	waitFor(t, "more channel checks", func() error {
		if n := c.requests.Load(); n < seen+8 {
			return fmt.Errorf("%d requests since the rollback", n-seen)
		}
		return nil
	})
	if n := c.k3sGets.Load(); n != gets {
		t.Fatalf("the rolled-back k3s was downloaded %d more times", n-gets)
	}
	if n := strings.Count(c.log(), "k3s upgrade\t"); n != 1 {
		t.Fatalf("%d upgrades started, want 1", n)
	}
}

func TestTamperedK3sIsRefusedBeforeStaging(t *testing.T) {
	c := newK3sChannel(t, k3s.RoleServer, nil)
	c.publish(standinVersion(t, newVersion))
	served, _ := filepath.Glob(filepath.Join(c.repo.ServeDir(), "targets", board, "1.0.0", "*.k3s-amd64-*.zst"))
	if len(served) != 1 {
		t.Fatalf("served k3s: %v", served)
	}
	data, err := os.ReadFile(served[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	os.WriteFile(served[0], data, 0o644)
	_, stop := c.boot()
	waitFor(t, "the refusal", func() error {
		if !strings.Contains(c.log(), "corrupted target") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})
	if ents, _ := os.ReadDir(filepath.Join(c.varDir, "k3s", "bin")); len(ents) != 0 {
		t.Fatalf("staged after a refused download: %v", ents)
	}
	if v, err := c.kubeletVersion(); err != nil || v != "v1.36.3+k3s1" {
		t.Fatalf("node runs %s (%v)", v, err)
	}
	// The poller tries the download again on every check, so a temporary
	// file can be in flight: once the agent stops, none may be left.
	stop()
	waitFor(t, "no download left behind", func() error {
		if ents, _ := os.ReadDir(filepath.Join(c.varDir, "k3s", "download")); len(ents) != 0 {
			return fmt.Errorf("download left: %v", ents)
		}
		return nil
	})
}

func TestK3sAgentWaitsForItsServer(t *testing.T) {
	needTools(t)
	server := k3stest.StartServer(t, "server-0001")
	c := newK3sChannel(t, k3s.RoleAgent, server)
	c.admin = server.Kubeconfig
	c.publish(standinVersion(t, newVersion))
	d, _ := c.boot()
	status := c.status(d)
	waitFor(t, "the agent to wait", func() error {
		st, err := status()
		if err == nil && !strings.HasPrefix(st.LastUpgrade, k3s.OutcomeWaiting) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
	st, _ := status()
	if st.Running != "v1.36.3+k3s1" || st.Staged != newVersion || len(st.Bad) != 0 {
		t.Fatalf("while waiting: %+v", st)
	}
	if v, err := c.kubeletVersion(); err != nil || v != "v1.36.3+k3s1" {
		t.Fatalf("agent node runs %s (%v)", v, err)
	}
	// It asks again on the next checks.
	waitFor(t, "a second attempt", func() error {
		if n := strings.Count(c.log(), "k3s upgrade waits for the servers"); n < 2 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
}
