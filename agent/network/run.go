package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultResync re-applies the config now and then even without events,
// so a change no link event announces (an address someone deleted) is
// undone too.
const defaultResync = time.Minute

// dhcpKey names the DHCP client of one link and IP version (4 or 6).
type dhcpKey struct {
	link    string
	version int
}

// dhcpRun is a DHCP client running on one link.
type dhcpRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Run reconciles until ctx ends: once at the start, again on every link
// event (a cable unplugged and plugged back in, a link someone set down),
// whenever a DHCP lease changes, and every Options.Resync. It keeps a DHCPv4
// client on every link with dhcp4 and a DHCPv6 client on every link with
// dhcp6. Apply errors are logged, reported to
// OnApply and retried; Run returns only when ctx ends or the kernel stops
// sending link events.
func (r *Reconciler) Run(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 256)
	stop := make(chan struct{})
	defer close(stop)
	subErr := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, stop, netlink.LinkSubscribeOptions{
		Namespace: &r.ns,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribe to link events in %s: %w", r.ns, err)
	}
	kick := make(chan struct{}, 1)
	clients := map[dhcpKey]*dhcpRun{}
	defer func() {
		for _, c := range clients {
			c.cancel()
			<-c.done
		}
	}()
	carrier := map[string]bool{}
	resync := r.opts.Resync
	if resync <= 0 {
		resync = defaultResync
	}
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	for {
		acts, err := r.Apply(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.report(acts, err)
		r.syncDHCP(ctx, clients, kick)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				return errors.New("link events: subscription closed")
			}
			r.linkEvent(u, carrier, clients)
			drain(updates, carrier, clients, r)
		case <-kick:
		case <-ticker.C:
		case err := <-subErr:
			return fmt.Errorf("link events: %w", err)
		}
	}
}

func (r *Reconciler) report(acts []Action, err error) {
	for _, a := range acts {
		r.log.Info("network change", "action", a.String())
	}
	if err != nil {
		r.log.Warn("network reconcile", "err", err)
	}
	if r.opts.OnApply != nil {
		r.opts.OnApply(acts, err)
	}
}

// drain takes the events that queued up behind the first, so a burst of
// them costs one reconcile.
func drain(updates chan netlink.LinkUpdate, carrier map[string]bool, clients map[dhcpKey]*dhcpRun, r *Reconciler) {
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				return
			}
			r.linkEvent(u, carrier, clients)
		default:
			return
		}
	}
}

// linkEvent restarts the DHCP clients of a link whose carrier came back:
// the cable may now lead to another network, and the server may have
// forgotten the lease.
func (r *Reconciler) linkEvent(u netlink.LinkUpdate, carrier map[string]bool, clients map[dhcpKey]*dhcpRun) {
	name := u.Attrs().Name
	up := u.Flags&unix.IFF_LOWER_UP != 0
	if u.Header.Type == unix.RTM_DELLINK {
		delete(carrier, name)
		return
	}
	was, known := carrier[name]
	carrier[name] = up
	if known && !was && up {
		for _, k := range []dhcpKey{{name, 4}, {name, 6}} {
			if c, ok := clients[k]; ok {
				r.log.Info("carrier back, restarting DHCP", "link", name, "version", k.version)
				c.cancel()
				<-c.done
				delete(clients, k)
			}
		}
	}
}

// syncDHCP starts a client for every dhcp4 or dhcp6 link that has none
// (or whose client ended) and stops the clients of links that no longer
// want one.
func (r *Reconciler) syncDHCP(ctx context.Context, clients map[dhcpKey]*dhcpRun, kick chan struct{}) {
	want := r.dhcpLinkNames()
	for k, c := range clients {
		select {
		case <-c.done:
			delete(clients, k)
			continue
		default:
		}
		if !want[k] {
			c.cancel()
			<-c.done
			delete(clients, k)
			r.dropLease(k)
		}
	}
	for k := range want {
		if _, ok := clients[k]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		c := &dhcpRun{cancel: cancel, done: make(chan struct{})}
		clients[k] = c
		run := r.dhcpClient(k, kick)
		go func() {
			defer close(c.done)
			if err := run(cctx); err != nil && cctx.Err() == nil {
				r.log.Warn("dhcp client ended", "link", k.link, "version", k.version, "err", err)
			}
		}()
	}
}

func (r *Reconciler) dropLease(k dhcpKey) {
	if k.version == 6 {
		r.setLease6(k.link, nil)
	} else {
		r.setLease(k.link, nil)
	}
}

// dhcpClient returns the run function of k's client, which records lease
// changes and asks Run to reconcile.
func (r *Reconciler) dhcpClient(k dhcpKey, kick chan struct{}) func(context.Context) error {
	changed := func(ev LeaseEvent) {
		r.log.Info("dhcp", "link", k.link, "version", k.version, "event", string(ev))
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if k.version == 6 {
		return (&dhcp6Client{link: k.link, ns: r.ns, opts: r.opts.DHCP, update: func(ev LeaseEvent, l *Lease6) {
			r.setLease6(k.link, l)
			if r.opts.DHCP.OnEvent6 != nil {
				r.opts.DHCP.OnEvent6(k.link, ev, l)
			}
			changed(ev)
		}}).run
	}
	return (&dhcpClient{link: k.link, ns: r.ns, opts: r.opts.DHCP, update: func(ev LeaseEvent, l *Lease) {
		r.setLease(k.link, l)
		if r.opts.DHCP.OnEvent != nil {
			r.opts.DHCP.OnEvent(k.link, ev, l)
		}
		changed(ev)
	}}).run
}

func (r *Reconciler) dhcpLinkNames() map[dhcpKey]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[dhcpKey]bool{}
	for _, k := range r.dhcpLinks {
		out[k] = true
	}
	return out
}
