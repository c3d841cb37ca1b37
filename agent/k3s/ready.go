package k3s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNotReady is wrapped by every readiness failure, so the health gate can
// tell "k3s is not ready" from "the check itself could not run".
var ErrNotReady = errors.New("k3s not ready")

// Where a device's k3s serves and writes what readiness looks at.
const (
	DefaultSupervisorURL     = "https://127.0.0.1:6443"
	DefaultAdminKubeconfig   = "/etc/rancher/k3s/k3s.yaml"
	DefaultKubeletKubeconfig = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
	DefaultKubeletHealthzURL = "http://127.0.0.1:10248/healthz"
)

// A Probe checks readiness once. It returns nil when ready, and otherwise an
// error whose text is the reason ("node NotReady: KubeletNotReady ...").
type Probe interface {
	Check(ctx context.Context) error
}

// ServerProbe checks a k3s server: the supervisor answers /ping, the API
// server's /readyz says ok with the admin kubeconfig, and this node is Ready.
type ServerProbe struct {
	SupervisorURL   string // DefaultSupervisorURL on a device
	AdminKubeconfig string // DefaultAdminKubeconfig on a device
	NodeName        string
	// NotBefore, when set, is the earliest heartbeat that counts (the
	// device's boot): see nodeReady.
	NotBefore time.Time
}

// AgentProbe checks a k3s agent: the kubelet answers healthz, and this node
// is Ready as seen through the kubelet's own kubeconfig.
type AgentProbe struct {
	KubeletHealthzURL string // DefaultKubeletHealthzURL on a device
	KubeletKubeconfig string // DefaultKubeletKubeconfig on a device
	NodeName          string
	// NotBefore, when set, is the earliest heartbeat that counts (the
	// device's boot): see nodeReady.
	NotBefore time.Time
}

// Check implements Probe.
func (p ServerProbe) Check(ctx context.Context) error {
	cfg, err := loadKubeconfig(p.AdminKubeconfig)
	if err != nil {
		return err
	}
	if err := pingSupervisor(ctx, cfg, strings.TrimSuffix(p.SupervisorURL, "/")+"/ping"); err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", p.AdminKubeconfig, err)
	}
	body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("apiserver /readyz: %w", apiError(err, body))
	}
	return nodeReady(ctx, c, p.NodeName, p.NotBefore)
}

// Check implements Probe.
func (p AgentProbe) Check(ctx context.Context) error {
	if err := kubeletHealthz(ctx, p.KubeletHealthzURL); err != nil {
		return err
	}
	cfg, err := loadKubeconfig(p.KubeletKubeconfig)
	if err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", p.KubeletKubeconfig, err)
	}
	return nodeReady(ctx, c, p.NodeName, p.NotBefore)
}

func loadKubeconfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cfg.Timeout = 10 * time.Second
	return cfg, nil
}

// pingSupervisor asks the supervisor for "pong", trusting the CA of the kubeconfig the
// same server wrote.
func pingSupervisor(ctx context.Context, cfg *rest.Config, url string) error {
	tc := &tls.Config{}
	if len(cfg.CAData) > 0 || cfg.CAFile != "" {
		pool := x509.NewCertPool()
		ca := cfg.CAData
		if len(ca) == 0 {
			ca, _ = os.ReadFile(cfg.CAFile)
		}
		pool.AppendCertsFromPEM(ca)
		tc.RootCAs = pool
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	body, err := httpGetOK(ctx, client, url)
	if err != nil {
		return fmt.Errorf("supervisor %s: %w", url, err)
	}
	if strings.TrimSpace(body) != "pong" {
		return fmt.Errorf("supervisor %s: answered %q, want pong", url, body)
	}
	return nil
}

func kubeletHealthz(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	body, err := httpGetOK(ctx, client, url)
	if err != nil {
		return fmt.Errorf("kubelet healthz %s: %w", url, err)
	}
	if strings.TrimSpace(body) != "ok" {
		return fmt.Errorf("kubelet healthz %s: answered %q", url, body)
	}
	return nil
}

func httpGetOK(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, readyFirstLine(string(b)))
	}
	return string(b), nil
}

// apiError keeps the failing checks of a /readyz answer, which client-go
// otherwise hides behind "the server is currently unable to handle the request".
func apiError(err error, body []byte) error {
	var failed []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "[-]") {
			failed = append(failed, strings.TrimPrefix(l, "[-]"))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(failed, ", "), err)
	}
	return err
}

// nodeReady returns nil if the node's Ready condition is True and was
// posted at or after notBefore, and the condition's reason and message
// otherwise. The API server keeps a node's last status across the device's
// reboot: right after a reboot into a new release, Ready is the previous
// release's word until this boot's kubelet posts its own (it does at once
// when it starts). Heartbeats carry the kubelet's clock, the device's own,
// to the second.
func nodeReady(ctx context.Context, c kubernetes.Interface, name string, notBefore time.Time) error {
	node, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type != corev1.NodeReady {
			continue
		}
		if beat := cond.LastHeartbeatTime.Time; !notBefore.IsZero() && beat.Before(notBefore.Truncate(time.Second)) {
			return fmt.Errorf("node Ready condition is stale: last heartbeat %s, before this boot (%s)",
				beat.UTC().Format(time.RFC3339), notBefore.UTC().Format(time.RFC3339))
		}
		if cond.Status == corev1.ConditionTrue {
			return nil
		}
		return fmt.Errorf("node NotReady: %s %s", cond.Reason, cond.Message)
	}
	return errors.New("node NotReady: no Ready condition posted yet")
}

// WaitReady checks p every interval until it passes or timeout runs out. On
// timeout the error wraps ErrNotReady and carries the last reason:
// "k3s not ready after 10m: node NotReady: KubeletNotReady ...". Each check
// runs to its end under ctx, not under the deadline, so the reason is always
// a check's own verdict rather than "context deadline exceeded". Cancelling
// ctx returns ctx's error, which is not a verdict.
func WaitReady(ctx context.Context, p Probe, timeout, interval time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := p.Check(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for k3s: %w", ctx.Err())
		}
		left := time.Until(deadline)
		if left <= 0 {
			return &NotReadyError{After: timeout, Reason: err.Error()}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for k3s: %w", ctx.Err())
		case <-time.After(min(interval, left)):
		}
	}
}

// NotReadyError is WaitReady's verdict; it wraps ErrNotReady.
type NotReadyError struct {
	After  time.Duration
	Reason string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("%v after %s: %s", ErrNotReady, shortDuration(e.After), e.Reason)
}

func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// shortDuration prints 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func readyFirstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
