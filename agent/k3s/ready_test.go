package k3s

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// kubeTimeout bounds waits on a k3s that is starting or changing state; it
// is a deadline for failing, not an expectation of speed.
const kubeTimeout = 3 * time.Minute

// needK3s skips only under -short: these tests run a k3s (the stand-in with
// a real kube-apiserver, or K3S_BINARY) and must run in CI.
func needK3s(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a k3s server (kube-apiserver); skipped under -short")
	}
}

func serverProbe(s *k3stest.Server) ServerProbe {
	return ServerProbe{SupervisorURL: s.URL, AdminKubeconfig: s.Kubeconfig, NodeName: s.Name}
}

func agentProbe(n *k3stest.Node) AgentProbe {
	return AgentProbe{KubeletHealthzURL: n.KubeletHealthzURL, KubeletKubeconfig: n.KubeletKubeconfig, NodeName: n.Name}
}

func adminClient(t *testing.T, s *k3stest.Server) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitReady(t *testing.T, p Probe) {
	t.Helper()
	if err := WaitReady(context.Background(), p, kubeTimeout, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestServerReadinessPassesOnceK3sIsUp(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "server-ready")
	waitReady(t, serverProbe(s))
	// The server runs a kubelet too, so the agent checks pass on it as well.
	waitReady(t, agentProbe(&s.Node))
}

func TestAgentReadinessSeesItsNodeThroughTheKubeletKubeconfig(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "agent-ready-server")
	a := k3stest.StartAgent(t, s, "agent-ready-worker")
	waitReady(t, agentProbe(a))
	// The probe must be looking at its own node, not any Ready node.
	wrong := agentProbe(a)
	wrong.NodeName = "no-such-node"
	err := wrong.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no-such-node") {
		t.Fatalf("probe of a missing node: %v", err)
	}
}

func TestNotReadyNodeGivesTheReason(t *testing.T) {
	needK3s(t)
	if k3stest.Real() {
		t.Skip(k3stest.ErrNeedsStandin)
	}
	s := k3stest.StartServer(t, "notready")
	p := serverProbe(s)
	waitReady(t, p)

	const msg = "container runtime is down"
	if err := s.SetNotReady(msg); err != nil {
		t.Fatal(err)
	}
	// Wait until the node reports it, then the verdict must carry the reason.
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	for p.Check(ctx) == nil {
		if ctx.Err() != nil {
			t.Fatal("node stayed Ready after the NotReady command")
		}
		time.Sleep(200 * time.Millisecond)
	}
	err := WaitReady(context.Background(), p, 2*time.Second, 500*time.Millisecond)
	want := "k3s not ready after 2s: node NotReady: KubeletNotReady " + msg
	if err == nil || err.Error() != want {
		t.Fatalf("verdict:\n got %v\nwant %s", err, want)
	}
	var nre *NotReadyError
	if !errors.Is(err, ErrNotReady) || !errors.As(err, &nre) || nre.After != 2*time.Second {
		t.Fatalf("verdict %#v does not unwrap to ErrNotReady/NotReadyError", err)
	}
	if err := agentProbe(&s.Node).Check(context.Background()); err == nil {
		t.Fatal("agent probe passed on a NotReady node")
	}

	if err := s.SetReady(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
}

func TestProbesNameWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "k3s.yaml")
	// A kubeconfig whose server is not listening: port 1 on loopback.
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n" +
		"users:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		probe Probe
		want  string
	}{
		{"no kubeconfig", ServerProbe{SupervisorURL: "https://127.0.0.1:1", AdminKubeconfig: filepath.Join(dir, "none"), NodeName: "n"}, "kubeconfig " + filepath.Join(dir, "none")},
		{"no supervisor", ServerProbe{SupervisorURL: "https://127.0.0.1:1", AdminKubeconfig: kc, NodeName: "n"}, "supervisor https://127.0.0.1:1/ping"},
		{"no kubelet", AgentProbe{KubeletHealthzURL: "http://127.0.0.1:1/healthz", KubeletKubeconfig: kc, NodeName: "n"}, "kubelet healthz http://127.0.0.1:1/healthz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WaitReady(context.Background(), tc.probe, 50*time.Millisecond, 10*time.Millisecond)
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrNotReady naming %q", err, tc.want)
			}
		})
	}
}

func TestNotReadyVerdictPrintsShortDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", 90 * time.Second: "1m30s", 2 * time.Hour: "2h", 5 * time.Second: "5s",
	} {
		got := (&NotReadyError{After: d, Reason: "r"}).Error()
		if got != "k3s not ready after "+want+": r" {
			t.Errorf("%v: %q", d, got)
		}
	}
}

// TestReadyFromBeforeThisBootIsStale stops a node's kubelet: the API server
// still says Ready, as it does right after a device reboots into a new
// release, but a Ready whose heartbeat predates the boot does not count.
func TestReadyFromBeforeThisBootIsStale(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "stale-server")
	a := k3stest.StartAgent(t, s, "stale-worker")
	waitReady(t, agentProbe(a))
	a.Stop()
	c := adminClient(t, s)
	ctx := context.Background()
	if err := nodeReady(ctx, c, a.Name, time.Time{}); err != nil {
		t.Fatalf("the stopped node's last status should still say Ready: %v", err)
	}
	boot := time.Now().Add(2 * time.Second) // the device came back after the last heartbeat
	err := nodeReady(ctx, c, a.Name, boot)
	if err == nil || !strings.Contains(err.Error(), "node Ready condition is stale: last heartbeat") {
		t.Fatalf("Ready from before the boot: %v, want it stale", err)
	}
	if err := nodeReady(ctx, c, a.Name, boot.Add(-time.Hour)); err != nil {
		t.Fatalf("a heartbeat after the boot counts: %v", err)
	}
}
