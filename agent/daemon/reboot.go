package daemon

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-edge/cairn/agent/k3s"
	"github.com/cairn-edge/cairn/agent/update"
)

// clusterRebooter asks the cluster before the machine reboots: it takes the
// reboot lease (one node of the cluster at a time), renews it in the
// background, cordons and drains the node, then reboots. Each step is
// bounded: a reboot the engine decided (into a trial, or out of a failed
// one) happens even when the API server is down or a drain times out; the
// lease's expiry covers a node that goes away holding it.
type clusterRebooter struct {
	next update.Rebooter
	node *k3sNode
	log  *zap.Logger
}

func (r *clusterRebooter) Reboot(ctx context.Context, reason string) error {
	r.prepare(ctx)
	// The cluster sees the node go down as rebooting, not as whatever the
	// asynchronous publisher last got through.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := r.node.publishNow(pctx); err != nil {
		r.log.Warn("node info before the reboot", zap.Error(err))
	}
	cancel()
	return r.next.Reboot(ctx, reason)
}

func (r *clusterRebooter) prepare(ctx context.Context) {
	n := r.node
	c, err := n.client(true)
	if err != nil {
		r.log.Warn("rebooting without the reboot lease and drain", zap.Error(err))
		return
	}
	lease := &k3s.RebootLease{Client: c, Holder: n.name}
	actx, cancel := context.WithTimeout(ctx, n.setup.LeaseWait)
	err = lease.Acquire(actx, 5*time.Second)
	cancel()
	if err != nil {
		r.log.Warn("reboot lease not taken, rebooting anyway", zap.Duration("waited", n.setup.LeaseWait), zap.Error(err))
	} else {
		r.log.Info("reboot lease taken", zap.String("node", n.name))
		go renew(ctx, lease, r.log)
	}
	res, err := k3s.Drain(ctx, c, n.name, n.setup.DrainTimeout, 2*time.Second)
	if err != nil {
		r.log.Warn("drain incomplete, rebooting anyway", zap.Error(err))
		return
	}
	r.log.Info("node drained", zap.Bool("single_node", res.SingleNode), zap.Strings("evicted", res.Evicted))
}

// renew keeps the lease while the node drains and goes down.
func renew(ctx context.Context, l *k3s.RebootLease, log *zap.Logger) {
	d := l.Duration
	if d <= 0 {
		d = k3s.DefaultRebootLeaseDuration
	}
	t := time.NewTicker(d / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Renew(ctx); err != nil {
				log.Warn("reboot lease renewal", zap.Error(err))
			}
		}
	}
}

// afterBoot ends what the reboot began, once this boot is settled (no
// update in flight, so a trial has passed its gate) and k3s is ready:
// a node that holds the reboot lease uncordons itself and releases it.
func (n *k3sNode) afterBoot(ctx context.Context, eng *update.Engine) {
	for {
		if eng.Status().Phase.AtRest() && n.runner != nil && n.probe.Check(ctx) == nil {
			done, err := n.release(ctx)
			if err == nil {
				if done {
					n.log.Info("node uncordoned, reboot lease released")
				}
				return
			}
			n.log.Debug("after boot", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// release uncordons the node and releases the lease if this node holds it.
func (n *k3sNode) release(ctx context.Context) (bool, error) {
	c, err := n.client(true)
	if err != nil {
		return false, nil // an agent without cluster credentials took no lease
	}
	lease := &k3s.RebootLease{Client: c, Holder: n.name}
	holder, err := lease.HeldBy(ctx)
	if err != nil || holder != n.name {
		return false, err
	}
	if err := k3s.Uncordon(ctx, c, n.name); err != nil {
		return false, err
	}
	return true, lease.Release(ctx)
}
