package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

func exampleConfig(t *testing.T, name string) *cloudinit.Config {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	seed, err := cloudinit.ReadSeedDir(filepath.Join(filepath.Dir(here), "..", "..", "cloud-init", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cloudinit.Resolve(seed)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFactoryExampleBecomesAVLANOnARenamedUplink(t *testing.T) {
	cfg, err := FromCloudInit(exampleConfig(t, "factory-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Ethernets) != 2 || len(cfg.VLANs) != 1 {
		t.Fatalf("config: %+v", cfg)
	}
	spare, uplink := cfg.Ethernets[0], cfg.Ethernets[1]
	if uplink.ID != "uplink" || uplink.SetName != "uplink0" || uplink.Match.MAC.String() != "52:54:00:12:34:56" || uplink.MTU != 1500 {
		t.Errorf("uplink: %+v", uplink)
	}
	if spare.Match.Name != "enp*" || spare.Match.Driver != "e1000e" || !spare.DHCP4 || !spare.Optional {
		t.Errorf("spare: %+v", spare)
	}
	v := cfg.VLANs[0]
	wantRoute := Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.20.30.254"), Metric: 100}
	if v.ID != "prod30" || v.VLANID != 30 || v.Link != "uplink" ||
		len(v.Addresses) != 1 || v.Addresses[0] != netip.MustParsePrefix("10.20.30.17/24") ||
		len(v.Routes) != 1 || v.Routes[0] != wantRoute ||
		v.Nameservers.Search[0] != "factory.example" || v.Nameservers.Addresses[0] != netip.MustParseAddr("10.20.0.53") {
		t.Errorf("vlan: %+v", v)
	}
}

func TestNoNetworkConfigMeansDHCPEverywhere(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	userData, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "cloud-init", "examples", "store-box.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := cloudinit.Resolve(cloudinit.Seed{Origin: "store-box.yaml", UserData: userData, MetaData: []byte("instance-id: store-42\n")})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := FromCloudInit(resolved)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Ethernets)+len(cfg.VLANs)+len(cfg.Bonds)+len(cfg.Bridges) != 0 || cfg.Hostname == "" {
		t.Fatalf("store box without network-config: %+v", cfg)
	}
}

func TestBondModesTheReconcilerCannotApplyAreRefused(t *testing.T) {
	nc, err := cloudinit.ParseNetworkConfig("network-config", []byte(`version: 2
ethernets:
  eth0: {}
  eth1: {}
bonds:
  bond0:
    interfaces: [eth0, eth1]
    parameters: {mode: balance-alb}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = FromCloudInit(&cloudinit.Config{Network: nc})
	if err == nil || !strings.Contains(err.Error(), "bonds.bond0.parameters.mode") {
		t.Fatalf("balance-alb: %v", err)
	}
}
