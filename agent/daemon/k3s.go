package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/update"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// K3sSetup says where k3s's pieces are; the zero value is a device's.
type K3sSetup struct {
	Paths     k3s.Paths    // rendered files; k3s.DefaultPaths
	Binaries  k3s.Binaries // the image's k3s (agent.K3sImagePath), staged ones and the link on /var
	RunnerDir string       // the child runner's state; VAR/k3s
	Env       []string     // extra environment of k3s
	// Token says where a device with a TPM keeps the k3s token: sealed
	// on /var (VAR/k3s/token.sealed), unsealed on /run (Root's
	// agent.DefaultUnsealedTokenPath).
	Token agent.K3sTokenFiles
	// NewRunner picks the runner; nil: k3s.NewRunner (systemd when it is
	// PID 1, else a supervised child).
	NewRunner func(k3s.Command) k3s.Runner
	// NodeName is the Kubernetes node; empty: node-name from extra_args,
	// else the configured host name, else the kernel's.
	NodeName string

	SupervisorURL, AdminKubeconfig       string // a server's readiness
	KubeletHealthzURL, KubeletKubeconfig string // an agent's readiness
	// ClusterKubeconfig lets an agent node take the reboot lease, cordon
	// and drain (docs/k3s.md, "Credentials"); a server uses the admin one.
	ClusterKubeconfig string
	ContainerdSocket  string
	DrainTimeout      time.Duration // 5 minutes when zero
	LeaseWait         time.Duration // longest wait for the reboot lease; 15 minutes when zero

	// UpgradeState is the k3s upgrade record (k3s.UpgradeState); VAR/k3s/upgrade.json.
	UpgradeState string
	// UpgradeTimeout bounds how long a new k3s has to get ready before it
	// is rolled back; 10 minutes when zero.
	UpgradeTimeout time.Duration
	// UpgradeInterval is how often the channel is asked for a newer k3s;
	// the daemon's PollInterval when zero.
	UpgradeInterval time.Duration
	SnapshotDir     string // datastore snapshots; VAR/k3s/snapshots
	SnapshotKeep    int    // snapshots kept; 3 when zero
}

func (s *K3sSetup) defaults(varDir string) {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	d := k3s.DefaultPaths()
	set(&s.Paths.Config, d.Config)
	set(&s.Paths.Registries, d.Registries)
	set(&s.Paths.Token, filepath.Join(varDir, "k3s/token"))
	set(&s.Paths.ImageList, filepath.Join(varDir, "k3s/airgap-images.list"))
	set(&s.Token.Sealed, filepath.Join(varDir, "k3s/token.sealed"))
	set(&s.Binaries.Image, agent.K3sImagePath)
	set(&s.Binaries.Dir, filepath.Join(varDir, "k3s/bin"))
	set(&s.Binaries.Link, filepath.Join(varDir, "k3s/k3s"))
	set(&s.RunnerDir, filepath.Join(varDir, "k3s"))
	set(&s.SupervisorURL, k3s.DefaultSupervisorURL)
	set(&s.AdminKubeconfig, k3s.DefaultAdminKubeconfig)
	set(&s.KubeletHealthzURL, k3s.DefaultKubeletHealthzURL)
	set(&s.KubeletKubeconfig, k3s.DefaultKubeletKubeconfig)
	set(&s.ClusterKubeconfig, filepath.Join(varDir, "k3s/cluster.kubeconfig"))
	set(&s.ContainerdSocket, k3s.DefaultContainerdSocket)
	if s.DrainTimeout == 0 {
		s.DrainTimeout = 5 * time.Minute
	}
	set(&s.UpgradeState, filepath.Join(varDir, "k3s/upgrade.json"))
	set(&s.SnapshotDir, filepath.Join(varDir, "k3s/snapshots"))
	if s.UpgradeTimeout == 0 {
		s.UpgradeTimeout = 10 * time.Minute
	}
	if s.SnapshotKeep == 0 {
		s.SnapshotKeep = 3
	}
	if s.LeaseWait == 0 {
		s.LeaseWait = 15 * time.Minute
	}
	if s.NewRunner == nil {
		dir := s.RunnerDir
		s.NewRunner = func(cmd k3s.Command) k3s.Runner { return k3s.NewRunner(cmd, dir) }
	}
}

// k3sNode is this node's k3s as the daemon runs it.
type k3sNode struct {
	setup  K3sSetup
	role   k3s.Role
	name   string
	runner k3s.Runner
	probe  k3s.Probe
	// dataDir is k3s's data dir, where a server's datastore lives.
	dataDir string
	info    k3s.NodeInfo
	log     *zap.Logger
	// token is how the token is kept; tokenErr why k3s got none and did
	// not start.
	token    *agent.K3sTokenStatus
	tokenErr error

	mu      sync.Mutex
	phase   update.Phase // the update state to publish next
	publish chan struct{}
	// sending is held from reading the state to publish until the API
	// server has it, so a slow publish of an older state never lands
	// after a newer one.
	sending sync.Mutex
}

// startK3s renders k3s's files from cairn.k3s, points the k3s link at the
// binary to run, and starts (or takes over) k3s, restarting it only when a
// file it reads changed.
func (d *Daemon) startK3s(ctx context.Context, c *cloudinit.K3s) (*k3sNode, error) {
	s := d.cfg.K3s
	spec := k3s.SpecFromConfig(c)
	imageVersionErr := s.imageVersion(ctx)
	n := &k3sNode{setup: s, role: spec.Role, name: nodeName(s, spec, d.device), log: d.log.Named("k3s"), dataDir: dataDir(spec),
		info:    k3s.NodeInfo{OSVersion: d.osVersion(), Slot: strings.ToLower(string(d.boot.Slot))},
		publish: make(chan struct{}, 1)}
	booted := bootTime(d.cfg.Root, d.log)
	if spec.Role == k3s.RoleServer {
		n.probe = k3s.ServerProbe{SupervisorURL: s.SupervisorURL, AdminKubeconfig: s.AdminKubeconfig, NodeName: n.name, NotBefore: booted}
	} else {
		n.probe = k3s.AgentProbe{KubeletHealthzURL: s.KubeletHealthzURL, KubeletKubeconfig: s.KubeletKubeconfig, NodeName: n.name, NotBefore: booted}
	}
	go n.publisher(ctx)
	if imageVersionErr != nil {
		// Without it, a staged k3s cannot be compared with the image's.
		n.log.Warn("k3s image binary", zap.Error(imageVersionErr))
	}
	if err := s.Binaries.Boot(); err != nil {
		return n, fmt.Errorf("k3s binary: %w", err)
	}
	paths := s.Paths
	if n.token, n.tokenErr = d.measured().PrepareK3sToken(ctx, d.boot, &spec, &paths, s.Token); n.tokenErr != nil {
		return n, n.tokenErr
	}
	files, err := k3s.Render(spec, k3s.Node{OSVersion: n.info.OSVersion, Slot: n.info.Slot}, paths)
	if err != nil {
		return n, err
	}
	changes, err := k3s.Apply(files)
	if err != nil {
		return n, err
	}
	cmd := k3s.K3sCommand(s.Binaries.Link, spec.Role, s.Paths.Config)
	cmd.Env = s.Env
	n.runner = s.NewRunner(cmd)
	started := time.Now()
	if err := n.runner.Start(ctx); err != nil {
		return n, fmt.Errorf("start k3s: %w", err)
	}
	if st, err := n.runner.Status(ctx); err == nil && changes.Restart && st.Running && st.Since.Before(started) {
		// A k3s left running by the previous agent has not read the new files.
		n.log.Info("k3s configuration changed, restarting", zap.Strings("files", changes.Paths))
		if err := n.runner.Restart(ctx); err != nil {
			return n, fmt.Errorf("restart k3s: %w", err)
		}
	}
	n.log.Info("k3s started", zap.String("role", string(spec.Role)), zap.String("node", n.name), zap.Strings("changed", changes.Paths))
	if changes.Images && len(spec.AirgapImages) > 0 {
		go n.importImages(ctx, spec.AirgapImages)
	}
	go d.followK3sUpgrades(ctx, n)
	return n, nil
}

// imageVersion asks the image's k3s for its version when the setup does
// not say it.
func (s *K3sSetup) imageVersion(ctx context.Context) error {
	if s.Binaries.ImageVersion != "" {
		return nil
	}
	v, err := k3s.BinaryVersion(ctx, s.Binaries.Image)
	s.Binaries.ImageVersion = v
	return err
}

// nodeName is the name k3s registers the node under.
func nodeName(s K3sSetup, spec k3s.Spec, cfg *cloudinit.Config) string {
	if s.NodeName != "" {
		return s.NodeName
	}
	for _, a := range spec.ExtraArgs {
		if v, ok := strings.CutPrefix(a, "--node-name="); ok {
			return v
		}
	}
	if h := cfg.Hostname(); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// importImages loads the air-gap tarballs once k3s's containerd answers.
func (n *k3sNode) importImages(ctx context.Context, tarballs []string) {
	for {
		refs, err := k3s.ImportImages(ctx, n.setup.ContainerdSocket, tarballs)
		if err == nil {
			n.log.Info("air-gap images imported", zap.Strings("images", refs))
			return
		}
		n.log.Debug("air-gap images", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// k3sReadiness is k3s in the health gate: the role's probe, or why k3s
// never started.
type k3sReadiness struct{ n *k3sNode }

func (r k3sReadiness) Ready(ctx context.Context) error {
	switch {
	case r.n != nil && r.n.tokenErr != nil:
		return fmt.Errorf("k3s not started: %w", r.n.tokenErr)
	case r.n == nil || r.n.runner == nil:
		return errors.New("k3s did not start")
	}
	return r.n.probe.Check(ctx)
}

// client is a Kubernetes client for this node's own node object: the admin
// kubeconfig on a server, the cluster kubeconfig, else the kubelet's, on
// an agent.
func (n *k3sNode) client(cluster bool) (kubernetes.Interface, error) {
	path := n.setup.AdminKubeconfig
	if n.role == k3s.RoleAgent {
		path = n.setup.ClusterKubeconfig
		if _, err := os.Stat(path); err != nil {
			if cluster {
				return nil, fmt.Errorf("agent node without %s: %w", path, err)
			}
			path = n.setup.KubeletKubeconfig
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// publishAsync asks the publisher to put phase on the node; it never blocks.
func (n *k3sNode) publishAsync(phase update.Phase) {
	n.mu.Lock()
	n.phase = phase
	n.mu.Unlock()
	select {
	case n.publish <- struct{}{}:
	default:
	}
}

// publisher publishes the OS version, slot and latest update state as
// they change, retrying while k3s is not up yet.
func (n *k3sNode) publisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.publish:
		}
		for {
			err := n.publishNow(ctx)
			if err == nil {
				break
			}
			n.log.Debug("node info", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// publishNow publishes the latest node info and update state, and waits
// for the API server to have it.
func (n *k3sNode) publishNow(ctx context.Context) error {
	n.sending.Lock()
	defer n.sending.Unlock()
	n.mu.Lock()
	info := n.info
	info.UpdateState = string(n.phase)
	n.mu.Unlock()
	if err := n.publishOnce(ctx, info); err != nil {
		return err
	}
	n.log.Info("node info published", zap.String("update_state", info.UpdateState))
	return nil
}

func (n *k3sNode) publishOnce(ctx context.Context, info k3s.NodeInfo) error {
	c, err := n.client(false)
	if err != nil {
		return err
	}
	return k3s.PublishNodeInfo(ctx, c, n.name, info)
}

// bootTime is when this boot began (btime of /proc/stat), the earliest
// node heartbeat the health gate takes for this release's. Where root has
// no /proc/stat (a test's tree), it is the agent's start: later still, so
// never more lenient.
func bootTime(root string, log *zap.Logger) time.Time {
	b, err := os.ReadFile(filepath.Join(root, "proc/stat"))
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					return time.Unix(sec, 0)
				}
			}
		}
	}
	log.Warn("boot time: no btime in proc/stat; node heartbeats count from the agent's start", zap.Error(err))
	return time.Now()
}
