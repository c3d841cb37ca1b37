package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// applyHost writes resolv.conf and sets the host name from the static
// settings and the DHCP leases of the configured links.
func (r *Reconciler) applyHost(cfg *Config, res *resolved, acts *[]Action) error {
	var servers []netip.Addr
	var search []string
	hostname := cfg.Hostname
	for _, s := range res.l3 {
		ns := s.Nameservers
		if l := r.linkLease(s); l != nil {
			ns.Addresses = append(slices.Clone(ns.Addresses), l.DNS...)
			ns.Search = append(slices.Clone(ns.Search), l.Search...)
			if hostname == "" {
				hostname = l.Hostname
			}
		}
		if l := r.linkLease6(s); l != nil {
			ns.Addresses = append(slices.Clone(ns.Addresses), l.DNS...)
			ns.Search = append(slices.Clone(ns.Search), l.Search...)
		}
		for _, a := range ns.Addresses {
			if !slices.Contains(servers, a) {
				servers = append(servers, a)
			}
		}
		for _, d := range ns.Search {
			if !slices.Contains(search, d) {
				search = append(search, d)
			}
		}
	}
	if r.opts.ResolvConf != "" && (len(servers) > 0 || len(search) > 0) {
		changed, err := writeIfChanged(r.opts.ResolvConf, resolvConf(servers, search), 0o644)
		if err != nil {
			return err
		}
		if changed {
			*acts = append(*acts, Action{Op: OpResolvConf, Detail: r.opts.ResolvConf})
		}
	}
	if r.opts.Hostname != nil && hostname != "" {
		cur, err := r.opts.Hostname.Hostname()
		if err != nil {
			return fmt.Errorf("hostname: read: %w", err)
		}
		if cur != hostname {
			if err := r.opts.Hostname.SetHostname(hostname); err != nil {
				return fmt.Errorf("hostname %q: set: %w", hostname, err)
			}
			*acts = append(*acts, Action{Op: OpHostname, Detail: hostname})
		}
	}
	return nil
}

// resolvConf renders resolv.conf; glibc reads at most three nameservers,
// so more are left out rather than silently ignored by the resolver.
func resolvConf(servers []netip.Addr, search []string) []byte {
	var b bytes.Buffer
	b.WriteString("# written by cairn-agent from the network config and DHCP leases\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for i, s := range servers {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.Bytes()
}

// writeIfChanged replaces path with data unless it already holds exactly
// that: temp file, fsync, rename, fsync of the directory, so a reader or a
// power cut sees the old file or the new one, never half of one.
func writeIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("%s: create temp: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, fmt.Errorf("%s: write %s: %w", path, tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return false, fmt.Errorf("%s: chmod %s: %w", path, tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("%s: fsync %s: %w", path, tmp, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("%s: close %s: %w", path, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("%s: rename: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("%s: open directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return false, fmt.Errorf("%s: fsync directory: %w", path, err)
	}
	return true, nil
}

// UTSHostname sets the host name of the calling thread's UTS namespace,
// which is the machine's for the agent.
type UTSHostname struct{}

// Hostname returns the current host name.
func (UTSHostname) Hostname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Nodename[:]), nil
}

// SetHostname sets the host name.
func (UTSHostname) SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname %q: %w", name, err)
	}
	return nil
}
