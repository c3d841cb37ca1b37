package k3s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ErrDrainTimeout is returned when pods are still on the node at the drain
// deadline, typically because a PodDisruptionBudget allows no disruption.
var ErrDrainTimeout = errors.New("drain timed out")

// DrainResult says what Drain did.
type DrainResult struct {
	SingleNode bool     // the cluster has one node: nothing to move pods to, drain skipped
	Evicted    []string // namespace/name of the pods evicted
}

// Cordon marks the node unschedulable.
func Cordon(ctx context.Context, c kubernetes.Interface, node string) error {
	return setUnschedulable(ctx, c, node, true)
}

// Uncordon marks the node schedulable again, after the health gate passed.
func Uncordon(ctx context.Context, c kubernetes.Interface, node string) error {
	return setUnschedulable(ctx, c, node, false)
}

func setUnschedulable(ctx context.Context, c kubernetes.Interface, node string, v bool) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"unschedulable": v}})
	_, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("node %s: set unschedulable=%v: %w", node, v, err)
	}
	return nil
}

// Drain cordons the node and evicts its pods through the Eviction API, so
// PodDisruptionBudgets are respected: an eviction a budget refuses is retried
// every interval until timeout, then Drain returns ErrDrainTimeout naming the
// pods left and why. DaemonSet pods, mirror pods and finished pods stay, as
// with `kubectl drain --ignore-daemonsets`; pods without a controller are
// evicted too, since the reboot ends them anyway. On a single-node cluster the
// node is cordoned and the drain skipped: there is nowhere to move pods to.
func Drain(ctx context.Context, c kubernetes.Interface, node string, timeout, interval time.Duration) (DrainResult, error) {
	var res DrainResult
	if err := Cordon(ctx, c, node); err != nil {
		return res, err
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("drain %s: list nodes: %w", node, err)
	}
	if len(nodes.Items) <= 1 {
		res.SingleNode = true
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	blocked := map[string]string{} // namespace/name -> last reason
	for {
		pods, err := podsToEvict(ctx, c, node)
		if err != nil {
			if ctx.Err() != nil {
				return res, drainTimeout(node, timeout, blocked)
			}
			return res, fmt.Errorf("drain %s: %w", node, err)
		}
		if len(pods) == 0 {
			return res, nil
		}
		next := map[string]string{}
		for _, p := range pods {
			key := p.Namespace + "/" + p.Name
			if p.DeletionTimestamp != nil {
				next[key] = "terminating"
				continue
			}
			reason, err := evict(ctx, c, p)
			switch {
			case err != nil && ctx.Err() != nil:
				next[key] = orDefault(blocked[key], "no answer before the deadline")
			case err != nil:
				return res, fmt.Errorf("drain %s: evict %s: %w", node, key, err)
			case reason != "":
				next[key] = reason
			default:
				res.Evicted = append(res.Evicted, key)
				next[key] = "terminating"
			}
		}
		blocked = next
		select {
		case <-ctx.Done():
			return res, drainTimeout(node, timeout, blocked)
		case <-time.After(interval):
		}
	}
}

// evict asks for one eviction. A refusal that waiting may lift (a budget,
// 429) comes back as a reason, not an error.
func evict(ctx context.Context, c kubernetes.Interface, p corev1.Pod) (string, error) {
	eviction := &policyv1.Eviction{
		TypeMeta:      metav1.TypeMeta{APIVersion: "policy/v1", Kind: "Eviction"},
		ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}},
	}
	// No client-side retries: a refused eviction carries Retry-After (10 s
	// while a budget is unprocessed), which client-go would sleep through on
	// its own, past the drain's deadline. Drain retries at its own pace.
	err := c.CoreV1().RESTClient().Post().Namespace(p.Namespace).Resource("pods").Name(p.Name).
		SubResource("eviction").MaxRetries(0).Body(eviction).Do(ctx).Error()
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return "", nil
	case apierrors.IsTooManyRequests(err), apierrors.IsForbidden(err) && strings.Contains(err.Error(), "disruption budget"):
		return "eviction refused: " + err.Error(), nil
	case apierrors.IsConflict(err):
		return "pod replaced while evicting", nil
	}
	return "", err
}

func podsToEvict(ctx context.Context, c kubernetes.Interface, node string) ([]corev1.Pod, error) {
	list, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if staysOnDrain(p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func staysOnDrain(p corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return true
	}
	if ref := metav1.GetControllerOf(&p); ref != nil && ref.Kind == "DaemonSet" {
		return true
	}
	return false
}

func drainTimeout(node string, timeout time.Duration, blocked map[string]string) error {
	keys := make([]string, 0, len(blocked))
	for k := range blocked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " (" + blocked[k] + ")"
	}
	return fmt.Errorf("drain %s: %w after %s: %d pod(s) left: %s", node, ErrDrainTimeout,
		shortDuration(timeout), len(keys), strings.Join(parts, "; "))
}
