package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/daemon"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/network"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest"
	"github.com/cairn-edge/cairn/agent/tpm/tpmtest/signedslot"
	"github.com/cairn-edge/cairn/agent/update"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/channel"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// scenario is one device with everything the daemon talks to.
type scenario struct {
	t       *testing.T
	dev     *device
	lan     *lan
	varDir  string
	socket  string
	cfg     *cloudinit.Config
	clock   *fakeClock
	reboots rebooter
	k3s     daemon.K3sSetup
	runners *runners
	admin   string // the admin kubeconfig k3s writes
	tpm     string
	logPath string // the log of the last boot
}

func newScenario(t *testing.T) *scenario {
	needTools(t, "ip", "dnsmasq", "swtpm", "mkfs.ext4")
	s := &scenario{t: t, dev: newDevice(t, partitions.SlotA), lan: newLAN(t), varDir: t.TempDir(),
		socket: filepath.Join(t.TempDir(), "agent.sock"), clock: &fakeClock{now: time.Unix(0, 0)},
		reboots: rebooter{reasons: make(chan string, 4)}}

	// The image: release key, board, TUF root; slot A holds 1.0.0.
	keyFile := filepath.Join(t.TempDir(), "release.key")
	pub := s.dev.path(agent.ReleaseKeyPath)
	os.MkdirAll(filepath.Dir(pub), 0o755)
	key, err := channel.GenerateReleaseKey(keyFile, pub)
	if err != nil {
		t.Fatal(err)
	}
	signedslot.Write(t, s.dev.path(s.dev.boot.Device), key, "1.0.0", board)
	if err := os.WriteFile(s.dev.path(s.dev.boot.OtherDevice), make([]byte, slotSize), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.dev.path(agent.BoardPath), []byte(board+"\n"), 0o644)
	s.dev.writeGrubEnv(t)
	repo, err := channel.Init(filepath.Join(t.TempDir(), "repo"), channel.InitOptions{RootKeys: 1, RootThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.ServeDir())))
	t.Cleanup(srv.Close)
	root, err := os.ReadFile(repo.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.dev.path(agent.TrustedRootPath), root, 0o644)
	image, built := buildSlot(t, keyFile, "1.1.0")
	publish(t, repo, image, built, "1.1.0")

	// k3s: the stand-in (or K3S_BINARY) as the image's k3s, on its own ports.
	bin, env := k3stest.Binary(t)
	k3sDir := t.TempDir()
	port := freePorts(t, 5)
	s.admin = filepath.Join(k3sDir, "k3s.yaml")
	s.runners = &runners{dir: filepath.Join(s.varDir, "k3s")}
	s.k3s = daemon.K3sSetup{
		Paths:         k3s.Paths{Config: filepath.Join(k3sDir, "etc/config.yaml"), Registries: filepath.Join(k3sDir, "etc/registries.yaml")},
		Binaries:      k3s.Binaries{Image: bin},
		Env:           env,
		NewRunner:     s.runners.new,
		SupervisorURL: fmt.Sprintf("https://127.0.0.1:%d", port), AdminKubeconfig: s.admin,
	}
	userData := fmt.Sprintf(`#cloud-config
cairn:
  k3s:
    role: server
    extra_args:
      - --data-dir=%s
      - --write-kubeconfig=%s
      - --https-listen-port=%d
      - --node-name=store-0042
      - --kubelet-arg=healthz-port=%d
  update:
    metadata_url: %s
    auto: false
  health:
    require_tpm: true
    deadline: 5m
`, filepath.Join(k3sDir, "data"), s.admin, port, port+4, srv.URL)
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
	return s
}

// boot starts a swtpm, measures the booted slot like cairn-init, and runs
// the daemon until the returned stop is called.
func (s *scenario) boot() (*daemon.Daemon, func()) {
	t := s.t
	s.tpm = tpmtest.Swtpm(t)
	s.dev.measure(t, s.tpm)
	d := daemon.New(daemon.Config{
		Root: s.dev.root, VarDir: s.varDir, Socket: s.socket, TPM: s.tpm,
		LoadConfig: func(context.Context) (*cloudinit.Config, error) { return s.cfg, nil },
		NetNS:      s.lan.ns, ResolvConf: filepath.Join(s.varDir, "resolv.conf"),
		DHCP:  network.DHCPOptions{Timeout: 500 * time.Millisecond, RetryFloor: 200 * time.Millisecond},
		Clock: s.clock, K3s: s.k3s, Rebooter: s.reboots, GateInterval: 500 * time.Millisecond,
		Log: s.logger(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("daemon ended with %v", err)
		}
	}
	t.Cleanup(stop)
	return d, stop
}

// logger writes the daemon's log to a file, shown when the test fails:
// goroutines may still log after the test ended, when t.Log may not.
func (s *scenario) logger() *zap.Logger {
	t := s.t
	path := filepath.Join(t.TempDir(), "agent.log")
	s.logPath = path
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(path)
			if len(b) > 30000 {
				b = b[len(b)-30000:]
			}
			t.Logf("agent log:\n%s", b)
		}
	})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(f), zapcore.DebugLevel))
}

func (s *scenario) kube() kubernetes.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.admin)
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds; the daemon's own deadlines bound how
// long that can take, the test only gives up after a generous while.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nodeHas checks the node's cairn.dev annotations.
func (s *scenario) nodeHas(want map[string]string, schedulable bool) func() error {
	return func() error {
		if _, err := os.Stat(s.admin); err != nil {
			return err
		}
		n, err := s.kube().CoreV1().Nodes().Get(context.Background(), "store-0042", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for k, v := range want {
			if n.Annotations[k] != v {
				return fmt.Errorf("annotation %s=%q, want %q (labels %v)", k, n.Annotations[k], v, n.Labels)
			}
		}
		if n.Spec.Unschedulable == schedulable {
			return fmt.Errorf("node unschedulable=%v", n.Spec.Unschedulable)
		}
		return nil
	}
}

func TestFirstBootThenAnUpdateThroughATrialBoot(t *testing.T) {
	s := newScenario(t)
	start := time.Now()

	// First boot on slot A: network, k3s, labels.
	d, stop := s.boot()
	waitFor(t, "the local API", func() error { _, err := api.NewClient(s.socket).Status(context.Background()); return err })
	if got := s.clock.Now(); !got.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("clock at %s after the clock floor, want the slot's build time", got)
	}
	waitFor(t, "labels of the first boot", s.nodeHas(map[string]string{
		k3s.LabelOSVersion: "1.0.0", k3s.LabelSlot: "a", k3s.LabelUpdateState: "idle"}, true))
	if st := s.dev.bootState(t); !st.A.Committed() {
		t.Fatalf("slot A not committed: %+v", st)
	}
	t.Logf("first boot settled after %s", time.Since(start).Round(time.Millisecond))

	// An update: install 1.1.0 into B (verity checked), take the lease,
	// cordon, then reboot.
	res, err := api.NewClient(s.socket).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Offer == nil || res.Offer.Manifest.Version != "1.1.0" {
		t.Fatalf("check: %+v", res)
	}
	var reason string
	select {
	case reason = <-s.reboots.reasons:
	case <-time.After(4 * time.Minute):
		t.Fatalf("no reboot; engine %+v", d.Engine().Status())
	}
	if !strings.Contains(reason, "1.1.0") {
		t.Errorf("reboot reason %q", reason)
	}
	lease := &k3s.RebootLease{Client: s.kube(), Holder: "store-0042"}
	if h, err := lease.HeldBy(context.Background()); err != nil || h != "store-0042" {
		t.Fatalf("reboot lease held by %q (%v), want this node", h, err)
	}
	if err := s.nodeHas(map[string]string{k3s.LabelUpdateState: "rebooting"}, false)(); err != nil {
		t.Fatalf("before the reboot: %v", err)
	}
	stop()
	s.runners.stop(t)

	// The power cycle: GRUB picks B, cairn-init measures it.
	if got := s.dev.bootloader(t); got != partitions.SlotB {
		t.Fatalf("bootloader chose slot %s", got)
	}
	s.dev = s.dev.rebootInto(t, partitions.SlotB)
	d, _ = s.boot()
	waitFor(t, "the trial to commit", func() error {
		if st := d.Engine(); st == nil || st.Status().Phase != update.PhaseCommitted {
			return fmt.Errorf("engine not committed yet")
		}
		return nil
	})
	if st := s.dev.bootState(t); st.B.OK != 1 {
		t.Fatalf("slot B not marked good: %+v", st)
	}
	waitFor(t, "labels of the committed release, node uncordoned", s.nodeHas(map[string]string{
		k3s.LabelOSVersion: "1.1.0", k3s.LabelSlot: "b", k3s.LabelUpdateState: "committed"}, true))
	waitFor(t, "the reboot lease released", func() error {
		h, err := lease.HeldBy(context.Background())
		if err == nil && h != "" {
			err = fmt.Errorf("held by %s", h)
		}
		return err
	})
	floor, err := os.ReadFile(filepath.Join(s.varDir, "update/version-floor"))
	if err != nil || strings.TrimSpace(string(floor)) != "1.1.0" {
		t.Fatalf("version floor %q (%v)", floor, err)
	}
	log, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`health gate	{"passed": true`, "release committed"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the trial boot's log lacks %q", want)
		}
	}
	if strings.Contains(string(log), "TPM version floor not raised") {
		t.Errorf("the TPM floor was not raised on commit:\n%s", log)
	}
	t.Logf("update committed after %s in all", time.Since(start).Round(time.Millisecond))
}
