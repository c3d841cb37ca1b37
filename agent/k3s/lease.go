package k3s

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrLeaseHeld is returned when another node holds the reboot lease.
var ErrLeaseHeld = errors.New("reboot lease held by another node")

// Defaults for the cluster's reboot lease.
const (
	RebootLeaseNamespace = "kube-system"
	RebootLeaseName      = "cairn-reboot"
	// DefaultRebootLeaseDuration covers a reboot plus the 10-minute health
	// gate; a holder that dies loses the lease after it.
	DefaultRebootLeaseDuration = 15 * time.Minute
)

// RebootLease is the coordination Lease that lets one node of a cluster
// reboot at a time. The holder renews it while it drains, reboots and passes
// its health gate, then releases it; a holder that never comes back loses it
// once RenewTime+Duration has passed.
type RebootLease struct {
	Client    kubernetes.Interface
	Namespace string        // RebootLeaseNamespace if empty
	Name      string        // RebootLeaseName if empty
	Holder    string        // this node's name
	Duration  time.Duration // DefaultRebootLeaseDuration if zero
}

func (l *RebootLease) ns() string { return orDefault(l.Namespace, RebootLeaseNamespace) }
func (l *RebootLease) name() string {
	return orDefault(l.Name, RebootLeaseName)
}

func (l *RebootLease) duration() time.Duration {
	if l.Duration <= 0 {
		return DefaultRebootLeaseDuration
	}
	return l.Duration
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TryAcquire takes the lease if it is free, expired or already ours, and
// returns ErrLeaseHeld (wrapped, naming the holder) otherwise. Taking it is
// an update on the lease's resourceVersion, so of two nodes racing for a
// free lease exactly one wins.
func (l *RebootLease) TryAcquire(ctx context.Context) error {
	leases := l.Client.CoordinationV1().Leases(l.ns())
	now := metav1.NewMicroTime(time.Now())
	cur, err := leases.Get(ctx, l.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.name(), Namespace: l.ns()},
			Spec:       l.heldSpec(now, 0),
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("lease %s/%s: %w (lost the race to create it)", l.ns(), l.name(), ErrLeaseHeld)
		}
		return l.wrap("create", err)
	}
	if err != nil {
		return l.wrap("get", err)
	}
	holder := holderOf(cur)
	if holder != "" && holder != l.Holder && !expired(cur, now.Time) {
		return fmt.Errorf("lease %s/%s: %w: %s until %s", l.ns(), l.name(), ErrLeaseHeld, holder,
			cur.Spec.RenewTime.Add(time.Duration(*cur.Spec.LeaseDurationSeconds)*time.Second).UTC().Format(time.RFC3339))
	}
	transitions := int32(0)
	if cur.Spec.LeaseTransitions != nil {
		transitions = *cur.Spec.LeaseTransitions
	}
	if holder != l.Holder {
		transitions++
	} else if cur.Spec.AcquireTime != nil {
		now = *cur.Spec.AcquireTime
	}
	cur.Spec = l.heldSpec(now, transitions)
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("lease %s/%s: %w (lost the race to update it)", l.ns(), l.name(), ErrLeaseHeld)
	}
	return l.wrap("update", err)
}

// Acquire waits until TryAcquire succeeds, trying every interval.
func (l *RebootLease) Acquire(ctx context.Context, interval time.Duration) error {
	for {
		err := l.TryAcquire(ctx)
		if err == nil || !errors.Is(err, ErrLeaseHeld) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// Renew extends the lease if this node still holds it, and returns
// ErrLeaseHeld if it was lost (expired and taken by another node).
func (l *RebootLease) Renew(ctx context.Context) error {
	leases := l.Client.CoordinationV1().Leases(l.ns())
	cur, err := leases.Get(ctx, l.name(), metav1.GetOptions{})
	if err != nil {
		return l.wrap("get", err)
	}
	if h := holderOf(cur); h != l.Holder {
		return fmt.Errorf("lease %s/%s: %w: %q", l.ns(), l.name(), ErrLeaseHeld, h)
	}
	now := metav1.NewMicroTime(time.Now())
	cur.Spec.RenewTime = &now
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("lease %s/%s: %w (changed while renewing)", l.ns(), l.name(), ErrLeaseHeld)
	}
	return l.wrap("renew", err)
}

// Release gives the lease up if this node holds it; releasing a lease held
// by another node or not held at all does nothing.
func (l *RebootLease) Release(ctx context.Context) error {
	leases := l.Client.CoordinationV1().Leases(l.ns())
	cur, err := leases.Get(ctx, l.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return l.wrap("get", err)
	}
	if holderOf(cur) != l.Holder {
		return nil
	}
	cur.Spec.HolderIdentity = nil
	cur.Spec.AcquireTime = nil
	cur.Spec.RenewTime = nil
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return l.wrap("release", err)
}

// HeldBy returns the current holder, or "" if the lease is free or expired.
func (l *RebootLease) HeldBy(ctx context.Context) (string, error) {
	cur, err := l.Client.CoordinationV1().Leases(l.ns()).Get(ctx, l.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", l.wrap("get", err)
	}
	if expired(cur, time.Now()) {
		return "", nil
	}
	return holderOf(cur), nil
}

func (l *RebootLease) heldSpec(acquired metav1.MicroTime, transitions int32) coordinationv1.LeaseSpec {
	now := metav1.NewMicroTime(time.Now())
	holder := l.Holder
	secs := int32(l.duration() / time.Second)
	return coordinationv1.LeaseSpec{
		HolderIdentity:       &holder,
		LeaseDurationSeconds: &secs,
		AcquireTime:          &acquired,
		RenewTime:            &now,
		LeaseTransitions:     &transitions,
	}
}

func (l *RebootLease) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("lease %s/%s: %s: %w", l.ns(), l.name(), op, err)
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// expired compares the holder's last renewal against this node's clock; the
// agent syncs time before k3s starts, so skew is seconds against minutes.
func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}
