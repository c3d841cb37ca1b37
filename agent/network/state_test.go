package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidateRejectsBrokenConfigs(t *testing.T) {
	eth := func(id string) Ethernet { return Ethernet{ID: id} }
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"duplicate id", Config{Ethernets: []Ethernet{eth("eth0")}, Bridges: []Bridge{{ID: "eth0"}}}, `bridge "eth0": id already used by a ethernet`},
		{"bad glob", Config{Ethernets: []Ethernet{{ID: "e", Match: Match{Name: "en["}}}}, `match name "en["`},
		{"long set-name", Config{Ethernets: []Ethernet{{ID: "e", SetName: "averyveryverylongname"}}}, "1 to 15 characters"},
		{"vlan id", Config{Ethernets: []Ethernet{eth("eth0")}, VLANs: []VLAN{{ID: "v", VLANID: 4095, Link: "eth0"}}}, "not in 1..4094"},
		{"vlan parent", Config{VLANs: []VLAN{{ID: "v", VLANID: 5, Link: "eth9"}}}, `link "eth9" is not defined`},
		{"bond mode", Config{Bonds: []Bond{{ID: "b", Mode: "balance-tlb"}}}, `unsupported mode "balance-tlb"`},
		{"unknown member", Config{Bridges: []Bridge{{ID: "br0", Interfaces: []string{"eth7"}}}}, `member "eth7" is not defined`},
		{"member twice", Config{Ethernets: []Ethernet{eth("eth0")}, Bonds: []Bond{{ID: "b", Interfaces: []string{"eth0"}}},
			Bridges: []Bridge{{ID: "br0", Interfaces: []string{"eth0"}}}}, `already belongs to "b"`},
		{"mtu", Config{Ethernets: []Ethernet{{ID: "e", Interface: Interface{MTU: 20}}}}, "mtu 20 below 68"},
		{"route families", Config{Ethernets: []Ethernet{{ID: "e", Interface: Interface{Routes: []Route{
			{To: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("192.0.2.1")}}}}}}, "mixes address families"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	good := Config{Ethernets: []Ethernet{eth("eth0"), eth("eth1")}, Bonds: []Bond{{ID: "bond0", Interfaces: []string{"eth0", "eth1"}}},
		VLANs: []VLAN{{ID: "bond0.7", VLANID: 7, Link: "bond0"}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestResolvConfIsReplacedWholeAndOnlyWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	data := resolvConf([]netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53"),
		netip.MustParseAddr("192.0.2.54"), netip.MustParseAddr("192.0.2.55")}, []string{"a.example", "b.example"})
	want := "search a.example b.example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.54\n"
	if !strings.HasSuffix(string(data), want) {
		t.Fatalf("resolv.conf:\n%s", data)
	}
	for i, wantChanged := range []bool{true, false} {
		changed, err := writeIfChanged(path, data, 0o644)
		if err != nil || changed != wantChanged {
			t.Fatalf("write %d: changed %v, %v", i, changed, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	if _, err := writeIfChanged(filepath.Join(t.TempDir(), "missing", "resolv.conf"), data, 0o644); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// UTSHostname is tried in a UTS namespace of its own, so the machine's
// host name stays as it is. The thread stays locked: it dies with the
// goroutine instead of going back to the pool in the new namespace.
func TestUTSHostnameSetsTheNamespaceHostName(t *testing.T) {
	needRoot(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			errc <- err
			return
		}
		var h UTSHostname
		if err := h.SetHostname("storebox-7"); err != nil {
			errc <- err
			return
		}
		got, err := h.Hostname()
		if err == nil && got != "storebox-7" {
			err = errors.New("host name reads " + got)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
