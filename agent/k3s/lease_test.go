package k3s

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func TestTwoNodesCompeteForTheRebootLease(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "lease-race")
	waitReady(t, serverProbe(s))
	c := adminClient(t, s)
	ctx := context.Background()
	a := &RebootLease{Client: c, Holder: "node-a", Duration: time.Hour}
	b := &RebootLease{Client: c, Holder: "node-b", Duration: time.Hour}

	// Both try at the same moment; exactly one may win, several rounds over.
	for round := range 5 {
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, l := range []*RebootLease{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; errs[i] = l.TryAcquire(ctx) }()
		}
		close(start)
		wg.Wait()
		winners := 0
		for _, err := range errs {
			if err == nil {
				winners++
			} else if !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		holder, err := a.HeldBy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if winners != 1 || (holder != "node-a" && holder != "node-b") {
			t.Fatalf("round %d: %d winners, holder %q, errors %v", round, winners, holder, errs)
		}
		winner, loser := a, b
		if holder == "node-b" {
			winner, loser = b, a
		}
		if err := loser.Renew(ctx); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("round %d: loser renewed: %v", round, err)
		}
		if err := loser.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if h, _ := a.HeldBy(ctx); h != holder {
			t.Fatalf("round %d: the loser's release freed the lease (holder %q)", round, h)
		}
		if err := winner.Renew(ctx); err != nil {
			t.Fatalf("round %d: winner renew: %v", round, err)
		}
		// Holding it again (after a reboot) is not a new acquisition.
		if err := winner.TryAcquire(ctx); err != nil {
			t.Fatalf("round %d: holder re-acquire: %v", round, err)
		}

		// The loser waits; it gets the lease once the winner releases.
		got := make(chan error, 1)
		go func() { got <- loser.Acquire(ctx, 100*time.Millisecond) }()
		if err := winner.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("round %d: loser after release: %v", round, err)
		}
		if h, _ := a.HeldBy(ctx); h != loser.Holder {
			t.Fatalf("round %d: holder after handover %q, want %q", round, h, loser.Holder)
		}
		if err := loser.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRebootLeaseExpiryCoversADeadHolder(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "lease-expiry")
	waitReady(t, serverProbe(s))
	c := adminClient(t, s)
	ctx := context.Background()
	dead := &RebootLease{Client: c, Holder: "dead-node", Duration: 2 * time.Second}
	waiting := &RebootLease{Client: c, Holder: "next-node", Duration: time.Hour}

	if err := dead.TryAcquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waiting.TryAcquire(ctx); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("took a live lease: %v", err)
	}
	// The holder never renews; the waiter gets the lease after expiry.
	wctx, cancel := context.WithTimeout(ctx, kubeTimeout)
	defer cancel()
	if err := waiting.Acquire(wctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := dead.Renew(ctx); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("expired holder renewed a lease taken over: %v", err)
	}
	lease, err := c.CoordinationV1().Leases(RebootLeaseNamespace).Get(ctx, RebootLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != "next-node" || *lease.Spec.LeaseTransitions != 1 || *lease.Spec.LeaseDurationSeconds != 3600 {
		t.Fatalf("lease after takeover: %+v", lease.Spec)
	}
}
