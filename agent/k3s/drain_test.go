package k3s

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// createPods puts plain pods on node in namespace ns and waits until they run
// (the stand-in's kubelet marks them Running; there are no containers).
func createPods(t *testing.T, c kubernetes.Interface, ns, node string, pods map[string]map[string]string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// No controller manager runs with the stand-in to create it.
	_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for name, labels := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		}
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(kubeTimeout)
	for {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == len(pods) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods running", running, len(pods))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func podNames(t *testing.T, c kubernetes.Interface, ns string) []string {
	t.Helper()
	list, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

func unschedulable(t *testing.T, c kubernetes.Interface, node string) bool {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}

func TestDrainBlockedByPodDisruptionBudgetUntilTimeout(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "drain-server")
	worker := k3stest.StartAgent(t, s, "drain-worker")
	waitReady(t, agentProbe(worker))
	c := adminClient(t, s)
	ctx := context.Background()
	const ns = "shop"
	createPods(t, c, ns, worker.Name, map[string]map[string]string{
		"web-0": {"app": "web"}, "web-1": {"app": "web"}, "cron": nil,
	})
	two := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	res, err := Drain(ctx, c, worker.Name, 3*time.Second, 200*time.Millisecond)
	if !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("drain with a budget allowing no disruption: %v", err)
	}
	for _, want := range []string{"drain drain-worker", "after 3s", "2 pod(s) left", "shop/web-0", "shop/web-1", "disruption budget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !slices.Equal(res.Evicted, []string{"shop/cron"}) || res.SingleNode {
		t.Errorf("result %+v, want only shop/cron evicted", res)
	}
	if got := podNames(t, c, ns); !slices.Equal(got, []string{"web-0", "web-1"}) {
		t.Errorf("pods left %v, want the budgeted ones only", got)
	}
	if !unschedulable(t, c, worker.Name) {
		t.Error("node not cordoned")
	}
	if unschedulable(t, c, s.Name) {
		t.Error("drain cordoned another node")
	}

	// Once the budget is gone the same drain completes.
	if err := c.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = Drain(ctx, c, worker.Name, kubeTimeout, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := podNames(t, c, ns); len(got) != 0 {
		t.Errorf("pods left after drain: %v", got)
	}
	if !slices.Equal(res.Evicted, []string{"shop/web-0", "shop/web-1"}) {
		t.Errorf("evicted %v", res.Evicted)
	}
	if err := Uncordon(ctx, c, worker.Name); err != nil {
		t.Fatal(err)
	}
	if unschedulable(t, c, worker.Name) {
		t.Error("node still cordoned after Uncordon")
	}
}

func TestDrainIsSkippedOnASingleNodeCluster(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "single")
	waitReady(t, serverProbe(s))
	c := adminClient(t, s)
	createPods(t, c, "solo", s.Name, map[string]map[string]string{"app": nil})
	res, err := Drain(context.Background(), c, s.Name, kubeTimeout, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SingleNode || len(res.Evicted) != 0 {
		t.Fatalf("result %+v, want drain skipped", res)
	}
	if got := podNames(t, c, "solo"); !slices.Equal(got, []string{"app"}) {
		t.Fatalf("pods %v, want the pod kept", got)
	}
	if !unschedulable(t, c, s.Name) {
		t.Error("node not cordoned")
	}
}

func TestDrainLeavesDaemonSetMirrorAndFinishedPods(t *testing.T) {
	ctrl := true
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		stay bool
	}{
		{"daemonset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "ds", Controller: &ctrl}}}}, true},
		{"replicaset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", Controller: &ctrl}}}}, false},
		{"mirror", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "x"}}}, true},
		{"succeeded", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, true},
		{"failed", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, true},
		{"bare running", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, false},
	} {
		if got := staysOnDrain(tc.pod); got != tc.stay {
			t.Errorf("%s: stays=%v, want %v", tc.name, got, tc.stay)
		}
	}
}
