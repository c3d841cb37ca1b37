package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// runAgent joins the server at --server with --token: it fetches kubelet
// credentials from the server's supervisor port, then registers and keeps
// its node like the server's own kubelet.
func runAgent(ctx context.Context, c *config, stderr io.Writer) error {
	kc, err := join(ctx, c.serverURL, c.token, stderr)
	if err != nil {
		return err
	}
	path := filepath.Join(c.dataDir, "agent", "kubelet.kubeconfig")
	if err := writeFile(path, kc, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "level=info msg=\"k3s stand-in agent joined %s\"\n", c.serverURL)
	notifyReady()
	return runNode(ctx, c, path, false, stderr)
}

// join retries until the server answers, as a k3s agent waits for its server.
func join(ctx context.Context, server, token string, stderr io.Writer) ([]byte, error) {
	server = strings.TrimSuffix(server, "/")
	for {
		kc, err := fetchKubeletKubeconfig(ctx, server, token)
		if err == nil {
			return kc, nil
		}
		if errors.Is(err, errUnauthorized) {
			return nil, err
		}
		fmt.Fprintf(stderr, "level=info msg=\"Waiting to retrieve agent configuration; server is not ready: %v\"\n", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

var errUnauthorized = errors.New("token rejected by server: 401 Unauthorized")

func fetchKubeletKubeconfig(ctx context.Context, server, token string) ([]byte, error) {
	// Like a k3s token without a CA hash: trust the CA the server hands out,
	// then use it for everything after.
	insecure := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ca, err := get(ctx, insecure, server+"/cacerts", "")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/cacerts: no certificate", server)
	}
	verified := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return get(ctx, verified, server+"/v1-k3s/standin-kubelet.kubeconfig", token)
}

func get(ctx context.Context, c *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.SetBasicAuth("node", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errUnauthorized
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, err
}
