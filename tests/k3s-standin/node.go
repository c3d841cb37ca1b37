package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// notReadyFile, when present in the data dir, makes the node NotReady with
// the file's content as the condition message.
const notReadyFile = "standin-notready"

const defaultNotReadyMessage = "container runtime network not ready: NetworkReady=false " +
	"reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"

// heartbeat is how often a kubelet posts node status and renews its lease.
const heartbeat = 10 * time.Second

// kubelet is the part of a kubelet the stand-in plays for its node.
type kubelet struct {
	cfg        *config
	client     kubernetes.Interface
	name       string
	server     bool
	signalDown bool
	stderr     io.Writer
}

func runNode(ctx context.Context, c *config, kubeconfig string, server bool, stderr io.Writer) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubelet kubeconfig %s: %w", kubeconfig, err)
	}
	rc.QPS, rc.Burst = 20, 40
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	k := &kubelet{cfg: c, client: client, name: nodeName(c), server: server, stderr: stderr}
	healthz, err := k.serveHealthz()
	if err != nil {
		return err
	}
	defer healthz.Close()
	if err := k.register(ctx); err != nil {
		return fmt.Errorf("register node %s: %w", k.name, err)
	}
	return k.loop(ctx)
}

func nodeName(c *config) string {
	n := c.nodeName
	if n == "" {
		n, _ = os.Hostname()
	}
	n = strings.ToLower(n)
	if c.withNodeID {
		id, err := persistentToken(filepath.Join(c.dataDir, "agent", "standin-node-id"), "")
		if err == nil {
			n += "-" + id[:8]
		}
	}
	return n
}

func (k *kubelet) serveHealthz() (io.Closer, error) {
	addr := net.JoinHostPort(k.cfg.kubeletArg("healthz-bind-address", "127.0.0.1"), k.cfg.kubeletArg("healthz-port", "10248"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kubelet healthz %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

func (k *kubelet) labels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname":           k.name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               runtime.GOARCH,
		"node.kubernetes.io/instance-type": "k3s",
	}
	if k.server {
		l["node-role.kubernetes.io/control-plane"] = "true"
		l["node-role.kubernetes.io/master"] = "true"
		if k.cfg.clusterInit {
			l["node-role.kubernetes.io/etcd"] = "true"
		}
	}
	for _, kv := range k.cfg.nodeLabels {
		key, v, _ := strings.Cut(kv, "=")
		l[key] = v
	}
	return l
}

func (k *kubelet) taints() ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, t := range k.cfg.nodeTaints {
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("node-taint %q: want key=value:Effect", t)
		}
		key, v, _ := strings.Cut(kv, "=")
		out = append(out, corev1.Taint{Key: key, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return out, nil
}

// register creates the node, or on a restart merges this start's labels into
// the existing one, like a kubelet does.
func (k *kubelet) register(ctx context.Context) error {
	taints, err := k.taints()
	if err != nil {
		return err
	}
	for {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.name, Labels: k.labels()},
				Spec: corev1.NodeSpec{Taints: taints}}
			_, err = k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		} else if err == nil {
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			for key, v := range k.labels() {
				node.Labels[key] = v
			}
			_, err = k.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		}
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
}

func (k *kubelet) loop(ctx context.Context) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastMsg string
	var lastPost time.Time
	for {
		msg := k.notReadyMessage()
		if msg != lastMsg || time.Since(lastPost) >= heartbeat {
			if err := k.postStatus(ctx, msg); err != nil {
				fmt.Fprintf(k.stderr, "level=error msg=\"node status: %v\"\n", err)
			} else {
				lastMsg, lastPost = msg, time.Now()
			}
			if err := k.renewLease(ctx); err != nil {
				fmt.Fprintf(k.stderr, "level=error msg=\"node lease: %v\"\n", err)
			}
		}
		if err := k.syncPods(ctx); err != nil {
			fmt.Fprintf(k.stderr, "level=error msg=\"pods: %v\"\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case s := <-sig:
			k.signalDown = s == syscall.SIGUSR1
		case <-tick.C:
		}
	}
}

// notReadyMessage is "" when the node should be Ready.
func (k *kubelet) notReadyMessage() string {
	b, err := os.ReadFile(filepath.Join(k.cfg.dataDir, notReadyFile))
	if err == nil {
		if m := strings.TrimSpace(string(b)); m != "" {
			return m
		}
		return defaultNotReadyMessage
	}
	if k.signalDown {
		return defaultNotReadyMessage
	}
	return ""
}

func (k *kubelet) postStatus(ctx context.Context, notReady string) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	if notReady != "" {
		ready = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
			Reason: "KubeletNotReady", Message: notReady}
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
		ready,
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, old := range node.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	node.Status.Conditions = conds
	addr := "127.0.0.1"
	if len(k.cfg.nodeIP) > 0 {
		addr = k.cfg.nodeIP[0]
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr},
		{Type: corev1.NodeHostName, Address: k.name}}
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node.Status.Capacity, node.Status.Allocatable = capacity, capacity
	node.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: version,
		ContainerRuntimeVersion: "containerd://standin", OSImage: "k3s stand-in",
		OperatingSystem: "linux", Architecture: runtime.GOARCH}
	_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// renewLease keeps the node's heartbeat Lease in kube-node-lease, as the
// kubelet does (40 s duration, renewed every 10 s).
func (k *kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, k.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now}}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// syncPods plays the kubelet's side of a pod's life without containers: a
// pod bound to this node becomes Running, and a pod being deleted is removed
// for good, as a kubelet does once its containers have stopped.
func (k *kubelet) syncPods(ctx context.Context) error {
	pods, err := k.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + k.name})
	if err != nil {
		return err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		switch {
		case p.DeletionTimestamp != nil:
			err = k.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name,
				metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				err = nil
			}
		case p.Status.Phase == "" || p.Status.Phase == corev1.PodPending:
			now := metav1.Now()
			p.Status.Phase = corev1.PodRunning
			p.Status.StartTime = &now
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
			_, err = k.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}
