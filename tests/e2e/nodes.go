package e2e

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, err
	}
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
		if n.Name == "host-server" {
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

// WaitNode waits until a device node satisfies ok and returns it.
func (s *K3sServer) WaitNode(ctx context.Context, ok func(Node) bool) (Node, error) {
	var last []Node
	for {
		nodes, err := s.DeviceNodes(ctx)
		if err == nil {
			last = nodes
			for _, n := range nodes {
				if ok(n) {
					return n, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return Node{}, fmt.Errorf("waiting for the device's node: %w (nodes: %+v)", ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}
