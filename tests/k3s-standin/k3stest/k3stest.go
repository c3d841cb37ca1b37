package k3stest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server or agent may take to write its
// kubeconfig; the stand-in takes seconds, a real k3s under load a minute.
const startTimeout = 5 * time.Minute

// Node is a running k3s server or agent.
type Node struct {
	Name              string
	DataDir           string
	KubeletKubeconfig string
	KubeletHealthzURL string
	LogFile           string
	real              bool
	cmd               *exec.Cmd
	exited            chan struct{}
}

// Server is a running k3s server.
type Server struct {
	Node
	URL        string // the supervisor and API server, https://127.0.0.1:PORT
	Kubeconfig string // the admin kubeconfig k3s wrote
	Token      string
}

// Binary returns the k3s to run and the environment it needs: K3S_BINARY if
// set, else the stand-in and its kube-apiserver, built (or found cached) now.
func Binary(t testing.TB) (string, []string) {
	t.Helper()
	if p := os.Getenv("K3S_BINARY"); p != "" {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiserver, err := BuildAPIServer(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	k3s, err := BuildStandin(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("k3s stand-in %s with %s (ready in %s)", k3s, apiserver, time.Since(start).Round(time.Millisecond))
	return k3s, []string{"K3S_STANDIN_KUBE_APISERVER=" + apiserver}
}

// Real reports whether the tests run against a real k3s (K3S_BINARY).
func Real() bool { return os.Getenv("K3S_BINARY") != "" }

// StartServer starts `k3s server` with its own data dir, ports and node name,
// its settings in a config file as a device has them, and extra command-line
// args; it returns once the admin kubeconfig is written. The server is
// stopped when the test ends.
func StartServer(t testing.TB, name string, extraArgs ...string) *Server {
	t.Helper()
	// The ports are free when chosen but not held: another test may take
	// one before the server binds it. Such a start is tried again on others.
	for attempt := 1; ; attempt++ {
		s, err := startServer(t, name, extraArgs)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			s.dumpLog(t)
			t.Fatal(err)
		}
		t.Logf("k3s server %s: %v; again on other ports", name, err)
	}
}

func startServer(t testing.TB, name string, extraArgs []string) (*Server, error) {
	dir := t.TempDir()
	// The supervisor port; the stand-in's API server and etcd use the next
	// three, the kubelet healthz the one after.
	port := freePorts(t, 5)
	s := &Server{
		Node: Node{Name: name, DataDir: filepath.Join(dir, "data"),
			KubeletKubeconfig: filepath.Join(dir, "data", "agent", "kubelet.kubeconfig")},
		URL:        fmt.Sprintf("https://127.0.0.1:%d", port),
		Kubeconfig: filepath.Join(dir, "k3s.yaml"),
		Token:      "cairn-test-token",
	}
	healthz := port + 4
	s.KubeletHealthzURL = fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)
	config := fmt.Sprintf("data-dir: %s\ntoken: %s\nnode-name: %s\nwrite-kubeconfig: %s\nwrite-kubeconfig-mode: \"0600\"\n"+
		"kubelet-arg:\n  - healthz-port=%d\n", s.DataDir, s.Token, name, s.Kubeconfig, healthz)
	args := append([]string{"server", "--config", writeConfig(t, dir, config),
		"--https-listen-port", strconv.Itoa(port)}, extraArgs...)
	return s, s.start(t, dir, args, s.Kubeconfig)
}

// StartAgent starts `k3s agent` joining server s; it returns once the
// kubelet kubeconfig is written.
func StartAgent(t testing.TB, s *Server, name string, extraArgs ...string) *Node {
	t.Helper()
	dir := t.TempDir()
	healthz := freePorts(t, 1)
	n := &Node{Name: name, DataDir: filepath.Join(dir, "data"),
		KubeletKubeconfig: filepath.Join(dir, "data", "agent", "kubelet.kubeconfig"),
		KubeletHealthzURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)}
	config := fmt.Sprintf("data-dir: %s\nnode-name: %s\nkubelet-arg:\n  - healthz-port=%d\n", n.DataDir, name, healthz)
	args := append([]string{"agent", "--config", writeConfig(t, dir, config),
		"--server", s.URL, "--token", s.Token}, extraArgs...)
	if err := n.start(t, dir, args, n.KubeletKubeconfig); err != nil {
		n.dumpLog(t)
		t.Fatal(err)
	}
	return n
}

func writeConfig(t testing.TB, dir, content string) string {
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// errPortTaken means k3s could not bind a port chosen as free.
var errPortTaken = errors.New("a port was taken before k3s bound it")

// start runs k3s with args and waits for it to write waitFor.
func (n *Node) start(t testing.TB, dir string, args []string, waitFor string) error {
	t.Helper()
	bin, env := Binary(t)
	n.real = Real()
	n.LogFile = filepath.Join(dir, "k3s.log")
	log, err := os.Create(n.LogFile)
	if err != nil {
		return err
	}
	defer log.Close()
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = append(os.Environ(), env...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			n.dumpLog(t)
		}
	})
	deadline := time.After(startTimeout)
	for {
		if _, err := os.Stat(waitFor); err == nil {
			return nil
		}
		select {
		case <-n.exited:
			err := fmt.Errorf("k3s %s exited before writing %s: %v", args[0], waitFor, n.cmd.ProcessState)
			if b, _ := os.ReadFile(n.LogFile); strings.Contains(string(b), "address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		case <-deadline:
			return fmt.Errorf("k3s %s did not write %s within %s", args[0], waitFor, startTimeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PID is the process ID of k3s (or its stand-in).
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Stop terminates k3s and waits for it.
func (n *Node) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

func (n *Node) dumpLog(t testing.TB) {
	b, _ := os.ReadFile(n.LogFile)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("k3s log %s:\n%s", n.LogFile, b)
}

// ErrNeedsStandin is why SetNotReady cannot work against a real k3s.
var ErrNeedsStandin = errors.New("making a node NotReady on command needs the k3s stand-in")

// SetNotReady makes the stand-in post NotReady with message as the reason
// (the control file standin-notready in its data dir). Against a real k3s it
// returns ErrNeedsStandin.
func (n *Node) SetNotReady(message string) error {
	if n.real {
		return ErrNeedsStandin
	}
	return os.WriteFile(filepath.Join(n.DataDir, "standin-notready"), []byte(message+"\n"), 0o644)
}

// SetReady undoes SetNotReady.
func (n *Node) SetReady() error {
	if n.real {
		return ErrNeedsStandin
	}
	err := os.Remove(filepath.Join(n.DataDir, "standin-notready"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// FreePorts finds count consecutive free TCP ports on 127.0.0.1 and returns
// the first: a stand-in server takes several (supervisor, apiserver, etcd).
func FreePorts(count int) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := base+count <= 65535
		for p := base + 1; ok && p < base+count; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on 127.0.0.1", count)
}

func freePorts(t testing.TB, count int) int {
	t.Helper()
	base, err := FreePorts(count)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// SupervisorHost is the host:port of the server's supervisor.
func (s *Server) SupervisorHost() string { return strings.TrimPrefix(s.URL, "https://") }
