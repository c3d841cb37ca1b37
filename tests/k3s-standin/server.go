package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// serverState is what a running stand-in server has set up in its data dir.
type serverState struct {
	cfg          *config
	pki          *pki
	token        string
	adminToken   string
	kubeletToken string
	apiPort      int
	etcdDir      string
	etcdClient   string
	etcdPeer     string
}

func runServer(ctx context.Context, c *config, stderr io.Writer) error {
	s, err := prepareServer(c)
	if err != nil {
		return err
	}
	supervisor, err := s.listenSupervisor()
	if err != nil {
		return err
	}
	defer supervisor.Close()
	child, err := s.startAPIServer(stderr)
	if err != nil {
		return err
	}
	var childErr error
	exited := make(chan struct{})
	go func() { childErr = child.Wait(); close(exited) }()
	defer stopChild(child, exited)
	adminCfg := s.restConfig(s.adminToken, fmt.Sprintf("https://127.0.0.1:%d", s.apiPort))
	if err := waitAPIServer(ctx, adminCfg, exited); err != nil {
		return fmt.Errorf("%w; its log ends: %s", err, logTail(s.apiserverLog(), 1500))
	}
	admin, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		return err
	}
	if err := bindNodeRole(ctx, admin); err != nil {
		return err
	}
	local := fmt.Sprintf("https://127.0.0.1:%d", c.httpsPort)
	if err := s.writeKubeconfig(c.writeKubeconfig, local, s.adminToken, parseMode(c.kubeconfigMode)); err != nil {
		return err
	}
	kubeletKC := filepath.Join(c.dataDir, "agent", "kubelet.kubeconfig")
	if err := s.writeKubeconfig(kubeletKC, local, s.kubeletToken, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "level=info msg=\"k3s stand-in server ready on %s\"\n", local)
	notifyReady()
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- runNode(ctx, c, kubeletKC, true, stderr) }()
	select {
	case <-ctx.Done():
		<-nodeErr
		return nil
	case <-exited:
		return fmt.Errorf("kube-apiserver exited: %v", childErr)
	case err := <-nodeErr:
		return err
	}
}

func prepareServer(c *config) (*serverState, error) {
	dir := filepath.Join(c.dataDir, "server")
	s := &serverState{cfg: c, apiPort: c.httpsPort + 1}
	var err error
	if s.token, err = persistentToken(filepath.Join(dir, "token"), c.token); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "node-token"), []byte(s.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	hosts := append([]string{"127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default"}, c.tlsSANs...)
	hosts = append(hosts, c.nodeIP...)
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if c.advertiseAddress != "" {
		hosts = append(hosts, c.advertiseAddress)
	}
	if s.pki, err = ensurePKI(filepath.Join(dir, "tls"), hosts); err != nil {
		return nil, fmt.Errorf("server tls: %w", err)
	}
	cred := filepath.Join(dir, "cred")
	if s.adminToken, err = persistentToken(filepath.Join(cred, "standin-admin.token"), ""); err != nil {
		return nil, err
	}
	if s.kubeletToken, err = persistentToken(filepath.Join(cred, "standin-kubelet.token"), ""); err != nil {
		return nil, err
	}
	csv := fmt.Sprintf("%s,system:admin,system:admin,system:masters\n%s,kubelet,kubelet,system:nodes\n",
		s.adminToken, s.kubeletToken)
	if err := writeFile(filepath.Join(cred, "standin-tokens.csv"), []byte(csv), 0o600); err != nil {
		return nil, err
	}
	// The etcd of --cluster-init lives where k3s keeps it; the stand-in plays
	// k3s's default SQLite datastore with an etcd in a directory of its own.
	s.etcdDir = filepath.Join(dir, "db", "standin-etcd")
	if c.clusterInit {
		s.etcdDir = filepath.Join(dir, "db", "etcd")
	}
	s.etcdClient = fmt.Sprintf("http://127.0.0.1:%d", c.httpsPort+2)
	s.etcdPeer = fmt.Sprintf("http://127.0.0.1:%d", c.httpsPort+3)
	if err := writeFile(filepath.Join(dir, "db", "standin-etcd-endpoint"), []byte(s.etcdClient+"\n"), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// persistentToken returns the token stored at path, or stores want (or a new
// random one) there. A different explicit token than the stored one is an
// error, as in k3s.
func persistentToken(path, want string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("token %s: bootstrap data already found and encrypted with different token", path)
		}
		return have, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if want == "" {
		want = randomToken()
	}
	return want, writeFile(path, []byte(want+"\n"), 0o600)
}

func apiserverBinary() (string, error) {
	if p := os.Getenv("K3S_STANDIN_KUBE_APISERVER"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "kube-apiserver")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kube-apiserver next to the stand-in: %w (set K3S_STANDIN_KUBE_APISERVER)", err)
	}
	return p, nil
}

func (s *serverState) startAPIServer(stderr io.Writer) (*exec.Cmd, error) {
	bin, err := apiserverBinary()
	if err != nil {
		return nil, err
	}
	adv := s.cfg.advertiseAddress
	if adv == "" && len(s.cfg.nodeIP) > 0 {
		adv = s.cfg.nodeIP[0]
	}
	if adv == "" {
		adv = "127.0.0.1"
	}
	args := []string{
		"--cairn-etcd-dir=" + s.etcdDir,
		"--cairn-etcd-client-url=" + s.etcdClient,
		"--cairn-etcd-peer-url=" + s.etcdPeer,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(s.apiPort),
		"--advertise-address=" + adv,
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + s.pki.certFile,
		"--tls-private-key-file=" + s.pki.keyFile,
		"--token-auth-file=" + filepath.Join(s.cfg.dataDir, "server", "cred", "standin-tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + s.pki.serviceKeyFile,
		"--service-account-signing-key-file=" + s.pki.serviceKeyFile,
		"--service-cluster-ip-range=10.43.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
	}
	for _, a := range s.cfg.apiserverArgs {
		args = append(args, "--"+strings.TrimLeft(a, "-"))
	}
	cmd := exec.Command(bin, args...)
	// Under k3s's Type=notify unit systemd takes READY=1 only from the
	// main process, the stand-in, which sends it once this server answers;
	// kube-apiserver would send one of its own, which systemd rejects.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") })
	logFile, err := os.OpenFile(s.apiserverLog(),
		os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The API server must not outlive the stand-in, even on SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logFile.Close()
	return cmd, nil
}

// apiserverLog is where kube-apiserver's output goes.
func (s *serverState) apiserverLog() string {
	return filepath.Join(s.cfg.dataDir, "server", "standin-kube-apiserver.log")
}

// logTail is the last n bytes of the file at path, on one line.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = b[max(0, len(b)-n):]
	return strings.Join(strings.Fields(string(b)), " ")
}

func stopChild(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *serverState) restConfig(token, host string) *rest.Config {
	return &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.pki.caPEM},
		Timeout:         30 * time.Second,
	}
}

func waitAPIServer(ctx context.Context, cfg *rest.Config, exited <-chan struct{}) error {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for {
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("kube-apiserver exited before ready; see server/standin-kube-apiserver.log")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// bindNodeRole lets the kubelet token act as a node. k3s uses the Node
// authorizer with one identity per node; the stand-in shares one token.
func bindNodeRole(ctx context.Context, c kubernetes.Interface) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "k3s-standin-nodes"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:nodes"}},
	}
	_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func parseMode(s string) os.FileMode {
	m, err := strconv.ParseUint(s, 8, 32)
	if s == "" || err != nil {
		return 0o600
	}
	return os.FileMode(m)
}

func (s *serverState) writeKubeconfig(path, server, token string, mode os.FileMode) error {
	return writeFile(path, kubeconfigBytes(server, s.pki.caPEM, token), mode)
}

func kubeconfigBytes(server string, ca []byte, token string) []byte {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["default"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	kc.CurrentContext = "default"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		panic(err) // a config built here always serializes
	}
	return b
}

// listenSupervisor serves k3s's supervisor port: /ping, /cacerts, the
// agent join endpoint, and everything else proxied to the API server, as
// k3s serves both on one port.
func (s *serverState) listenSupervisor() (io.Closer, error) {
	cert, err := tls.LoadX509KeyPair(s.pki.certFile, s.pki.keyFile)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(s.cfg.bindAddress, strconv.Itoa(s.cfg.httpsPort))
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, fmt.Errorf("supervisor listen %s: %w", addr, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.pki.caPEM)
	target, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d", s.apiPort))
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	proxy.FlushInterval = -1
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "pong")
	})
	mux.HandleFunc("/cacerts", func(w http.ResponseWriter, _ *http.Request) { w.Write(s.pki.caPEM) })
	mux.HandleFunc("/v1-k3s/standin-kubelet.kubeconfig", s.serveKubeletKubeconfig)
	mux.Handle("/", proxy)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// serveKubeletKubeconfig hands a joining agent its kubelet credentials when
// it shows the cluster token (basic auth "node:<token>", as k3s agents do).
func (s *serverState) serveKubeletKubeconfig(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != "node" || pass != s.token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	server := "https://" + r.Host
	w.Write(kubeconfigBytes(server, s.pki.caPEM, s.kubeletToken))
}
