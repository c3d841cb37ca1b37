package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Node is a device's node as the cluster's API server sees it.
type Node struct {
	Name   string
	Ready  bool
	Reason string // the Ready condition's message
	Labels map[string]string
}

// DeviceNodes lists the nodes other than the host server's own.
func (s *K3sServer) DeviceNodes(ctx context.Context) ([]Node, error) {
	cfg, err := s.config(ctx)
	if err != nil {
		return nil, err
	}
	return listNodes(ctx, cfg, "host-server")
}

// WaitNode waits until a device node satisfies ok and returns it.
func (s *K3sServer) WaitNode(ctx context.Context, ok func(Node) bool) (Node, error) {
	return waitNode(ctx, s.config, "host-server", ok)
}

func (s *K3sServer) config(context.Context) (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
}

// DeviceCluster is a k3s server running on the device (the stand-in with
// kube-apiserver inside the guest), its supervisor port forwarded to the
// host's loopback.
type DeviceCluster struct {
	URL   string // e.g. https://127.0.0.1:40123
	Token string // the cluster token of the device's user-data
}

// WaitNode waits until the device's own node satisfies ok and returns it.
func (c *DeviceCluster) WaitNode(ctx context.Context, ok func(Node) bool) (Node, error) {
	return waitNode(ctx, c.config, "", ok)
}

// config gets credentials the way a joining agent does: the cluster's CA
// from /cacerts, then, over TLS checked against that CA and with the
// cluster token, the kubeconfig the stand-in hands its agents
// (system:nodes, allowed to read nodes).
func (c *DeviceCluster) config(ctx context.Context) (*rest.Config, error) {
	// Unchecked only for the CA itself, as a k3s agent given a token
	// without the CA's hash does; the kubeconfig is fetched checked.
	ca, err := c.get(ctx, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, "/cacerts", false)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("device cluster %s/cacerts: no certificate", c.URL)
	}
	kc, err := c.get(ctx, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}}}, "/v1-k3s/standin-kubelet.kubeconfig", true)
	if err != nil {
		return nil, err
	}
	return clientcmd.RESTConfigFromKubeConfig(kc)
}

func (c *DeviceCluster) get(ctx context.Context, client *http.Client, path string, auth bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.SetBasicAuth("node", c.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device cluster: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	if err != nil {
		return nil, fmt.Errorf("device cluster %s%s: %w", c.URL, path, err)
	}
	return body, nil
}

// listNodes lists the nodes of the cluster at cfg but skip.
func listNodes(ctx context.Context, cfg *rest.Config, skip string) ([]Node, error) {
	cfg.Timeout = 10 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []Node
	for _, n := range list.Items {
		if n.Name == skip {
			continue
		}
		node := Node{Name: n.Name, Labels: n.Labels}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				node.Ready, node.Reason = c.Status == corev1.ConditionTrue, c.Message
			}
		}
		out = append(out, node)
	}
	return out, nil
}

// waitNode waits until a node other than skip, of the cluster config
// reaches, satisfies ok, and returns it. config is asked again after an
// error: the cluster may still be starting.
func waitNode(ctx context.Context, config func(context.Context) (*rest.Config, error), skip string, ok func(Node) bool) (Node, error) {
	var last []Node
	var lastErr error
	for {
		cfg, err := config(ctx)
		if err == nil {
			var nodes []Node
			if nodes, err = listNodes(ctx, cfg, skip); err == nil {
				last = nodes
				for _, n := range nodes {
					if ok(n) {
						return n, nil
					}
				}
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return Node{}, fmt.Errorf("waiting for the device's node: %w (nodes: %+v, last error: %v)", ctx.Err(), last, lastErr)
		case <-time.After(2 * time.Second):
		}
	}
}
