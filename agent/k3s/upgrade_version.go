package k3s

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LabelControlPlane marks the server nodes of a k3s cluster.
const LabelControlPlane = "node-role.kubernetes.io/control-plane"

// BinaryVersion runs `k3s --version` and returns the version it prints on
// its first line ("k3s version v1.31.1+k3s1 (abcdef12)").
func BinaryVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("k3s binary %s: --version: %w", path, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "k3s" || f[1] != "version" {
		return "", fmt.Errorf("k3s binary %s: --version printed %q, not \"k3s version VERSION\"", path, line)
	}
	if _, err := semver.NewVersion(f[2]); err != nil {
		return "", fmt.Errorf("k3s binary %s: version %q: %w", path, f[2], err)
	}
	return f[2], nil
}

// Newer reports whether k3s version candidate is newer than current, by
// the order Upgrade enforces; a version that does not parse is never newer.
func Newer(candidate, current string) bool {
	c, err1 := semver.NewVersion(candidate)
	r, err2 := semver.NewVersion(current)
	return err1 == nil && err2 == nil && c.GreaterThan(r)
}

// ServerVersions returns the k3s version of every server node of the
// cluster (nodes with the control-plane role label), as their kubelets
// report it: the Upgrader's ServerVersions for an agent node.
func ServerVersions(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelControlPlane})
	if err != nil {
		return nil, fmt.Errorf("list server nodes: %w", err)
	}
	var versions []string
	for _, n := range nodes.Items {
		v := n.Status.NodeInfo.KubeletVersion
		if v == "" {
			return nil, fmt.Errorf("server node %s reports no kubelet version", n.Name)
		}
		versions = append(versions, v)
	}
	return versions, nil
}
