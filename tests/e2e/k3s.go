package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// K3sServer is a k3s server on the host (the stand-in with a real
// kube-apiserver, or K3S_BINARY) that devices join as agents, the way a
// k3s agent joins a remote server.
type K3sServer struct {
	Dir        string
	Port       int    // supervisor port on the host
	Token      string // cluster token
	Kubeconfig string // admin kubeconfig, for the host
	cmd        *exec.Cmd
	exited     chan struct{}
}

// GuestURL is the server as a device sees it.
func (s *K3sServer) GuestURL() string { return fmt.Sprintf("https://%s:%d", GuestHost, s.Port) }

// StartK3sServer builds (or finds cached) the stand-in and kube-apiserver
// and starts a server in dir; it returns once the admin kubeconfig exists.
func StartK3sServer(ctx context.Context, dir string) (*K3sServer, error) {
	bin, env := os.Getenv("K3S_BINARY"), []string(nil)
	if bin == "" {
		root, err := k3stest.RepoRoot()
		if err != nil {
			return nil, err
		}
		apiserver, err := k3stest.BuildAPIServer(ctx, root)
		if err != nil {
			return nil, err
		}
		if bin, err = k3stest.BuildStandin(ctx, root); err != nil {
			return nil, err
		}
		env = []string{"K3S_STANDIN_KUBE_APISERVER=" + apiserver}
	}
	port, err := k3stest.FreePorts(5)
	if err != nil {
		return nil, err
	}
	s := &K3sServer{Dir: dir, Port: port, Token: "cairn-e2e-token", Kubeconfig: filepath.Join(dir, "k3s.yaml"),
		exited: make(chan struct{})}
	config := fmt.Sprintf("data-dir: %s\ntoken: %s\nnode-name: host-server\nwrite-kubeconfig: %s\n"+
		"write-kubeconfig-mode: \"0600\"\ntls-san:\n  - %s\nkubelet-arg:\n  - healthz-port=%d\n",
		filepath.Join(dir, "data"), s.Token, s.Kubeconfig, GuestHost, port+4)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "k3s.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	s.cmd = exec.Command(bin, "server", "--config", cfgPath, "--https-listen-port", strconv.Itoa(port))
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start k3s server %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.After(5 * time.Minute)
	for {
		if _, err := os.Stat(s.Kubeconfig); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("k3s server exited before writing %s; see %s", s.Kubeconfig, log.Name())
		case <-deadline:
			s.Stop()
			return nil, errors.New("k3s server: no kubeconfig after 5m")
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop terminates the server and waits for it.
func (s *K3sServer) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
