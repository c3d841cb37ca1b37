package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

// LocalServerReleases are the local-server device's releases: 1.0.0 on
// its disk, built with kube-apiserver in its root (BuildOptions.LocalServer).
var LocalServerReleases = []Release{{Version: "1.0.0", Kind: Good}}

// localServerToken is the cluster token of the local-server device's
// user-data; the host shows it to the device's server to read its nodes.
const localServerToken = "cairn-e2e-local-token"

// NewLocalServerLab is a Lab whose device runs its k3s server itself
// (role server): the stand-in starts kube-apiserver and its etcd inside
// the guest, and the host starts no k3s server. The device's supervisor
// port (6443) is forwarded to the host, which reads the device's node
// through it (DeviceCluster).
func NewLocalServerLab(ctx context.Context, art *Artifacts, dir string, console io.Writer) (*Lab, error) {
	port, err := k3stest.FreePorts(1)
	if err != nil {
		return nil, err
	}
	return newLab(ctx, art, dir, console, false, func(ch *Channel, dir string, cfg DeviceConfig) (*Device, error) {
		cfg.K3sToken = localServerToken
		d, err := NewDevice(ctx, art, ch, dir, cfg)
		if err != nil {
			return nil, err
		}
		// kube-apiserver and etcd beside the agent and k3s.
		d.Memory, d.Forward = 2048, []Forward{{Host: port, Guest: 6443}}
		return d, nil
	})
}

// LocalServerBoot is scenario 1 on a device that is its own cluster: the
// first boot commits slot A with 1.0.0 measured, the k3s server on the
// device starts its kube-apiserver, and its node, read from the host
// through the forwarded port, is Ready with the control-plane role and
// the agent's cairn.dev/os-version=1.0.0 label, which the agent sets
// through that same server; the attestation verifies and systemd finishes
// the boot with no failed unit.
func (l *Lab) LocalServerBoot(ctx context.Context) (*Step, error) {
	m, errs, err := l.powerOnFirstBoot(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.verifyAttestation(ctx, m, 0, "1.0.0", partitions.SlotA); err != nil {
		errs = append(errs, err)
	}
	cluster := &DeviceCluster{URL: fmt.Sprintf("https://127.0.0.1:%d", l.Device.Forward[0].Host), Token: localServerToken}
	node, err := cluster.WaitNode(ctx, func(n Node) bool {
		return n.Ready && n.Labels["node-role.kubernetes.io/control-plane"] == "true" && n.Labels["cairn.dev/os-version"] == "1.0.0"
	})
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	l.Timing("power on to the node Ready on its own server", m.Uptime())
	l.Logf("node %s is Ready on the device's own k3s server, labelled cairn.dev/os-version=1.0.0", node.Name)
	if err := m.WaitBootFinished(ctx, 0); err != nil {
		errs = append(errs, err)
	}
	return &Step{Release: "1.0.0", Slot: "A", Result: "committed, its own k3s server", Took: m.Uptime()}, errors.Join(errs...)
}
