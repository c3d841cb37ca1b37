package k3s

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// LabelUpdateState is the node label with the update engine's state
// ("idle", "downloading", "trial", ...). LabelOSVersion and LabelSlot are
// declared with the config rendering, which sets them at registration.
const LabelUpdateState = "cairn.dev/update-state"

// NodeInfo is what Cairn publishes on its Kubernetes node.
type NodeInfo struct {
	OSVersion   string // release version of the booted slot
	Slot        string // booted slot, "a" or "b"
	UpdateState string // the update engine's state
}

// PublishNodeInfo sets the cairn.dev/ labels and annotations on the node.
// Labels hold label-safe forms (a semver "+build" becomes "_build") so that
// `kubectl get nodes -L cairn.dev/os-version` and selectors work; annotations
// under the same keys hold the exact values. Empty fields are left alone.
// k3s applies --node-label only when a node registers, so values that
// change while the node lives (update state, the slot after a reboot) are
// published here through the API.
func PublishNodeInfo(ctx context.Context, c kubernetes.Interface, node string, info NodeInfo) error {
	labels := map[string]string{}
	annotations := map[string]string{}
	for _, kv := range [][2]string{
		{LabelOSVersion, info.OSVersion},
		{LabelSlot, info.Slot},
		{LabelUpdateState, info.UpdateState},
	} {
		if kv[1] == "" {
			continue
		}
		labels[kv[0]] = labelValue(kv[1])
		annotations[kv[0]] = kv[1]
	}
	if len(labels) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}})
	if err != nil {
		return err
	}
	if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("node %s: publish %s: %w", node, patch, err)
	}
	return nil
}
