package k3s

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func TestNodeInfoIsVisibleAsLabelsAndAnnotations(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "labels")
	waitReady(t, serverProbe(s))
	c := adminClient(t, s)
	ctx := context.Background()

	if err := PublishNodeInfo(ctx, c, s.Name, NodeInfo{OSVersion: "1.4.0+build.7", Slot: "b", UpdateState: "trial"}); err != nil {
		t.Fatal(err)
	}
	// A later state change touches only the update state.
	if err := PublishNodeInfo(ctx, c, s.Name, NodeInfo{UpdateState: "idle"}); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "cairn.dev/slot=b,cairn.dev/os-version=1.4.0_build.7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 || nodes.Items[0].Name != s.Name {
		t.Fatalf("label selector found %d nodes", len(nodes.Items))
	}
	n := nodes.Items[0]
	for k, want := range map[string]string{LabelOSVersion: "1.4.0_build.7", LabelSlot: "b", LabelUpdateState: "idle"} {
		if n.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], want)
		}
	}
	for k, want := range map[string]string{LabelOSVersion: "1.4.0+build.7", LabelSlot: "b", LabelUpdateState: "idle"} {
		if n.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, n.Annotations[k], want)
		}
	}
	if n.Labels["kubernetes.io/hostname"] != s.Name {
		t.Errorf("k3s's own labels were lost: %v", n.Labels)
	}
	err = PublishNodeInfo(ctx, c, "gone", NodeInfo{Slot: "a"})
	if err == nil || !strings.Contains(err.Error(), "node gone") || !apierrors.IsNotFound(err) {
		t.Fatalf("publishing on a missing node: %v", err)
	}
}
