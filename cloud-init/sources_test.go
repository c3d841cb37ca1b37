package cloudinit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSeedURLFromKernelCommandLine(t *testing.T) {
	for cmdline, want := range map[string]string{
		"console=ttyS0 ds=nocloud;s=http://10.0.0.1/seed/ quiet": "http://10.0.0.1/seed/",
		`ro "ds=nocloud-net;s=https://cfg.example/store-7/"`:     "https://cfg.example/store-7/",
		`ds=nocloud\;seedfrom=http://10.0.0.1/s`:                 "http://10.0.0.1/s/",
		"ds=nocloud;i=iid-1;s=file:///run/seed/":                 "file:///run/seed/",
		"root=/dev/sda2 ds=ec2 quiet":                            "",
		"":                                                       "",
	} {
		got, err := SeedURL(cmdline)
		if err != nil || got != want {
			t.Errorf("SeedURL(%q) = %q, %v; want %q", cmdline, got, err, want)
		}
	}
	if _, err := SeedURL("ds=nocloud;s=ftp://host/"); err == nil {
		t.Error("ftp seed accepted")
	}
}

// seedServer serves a seed, failing the first `failures` requests with 503.
func seedServer(t *testing.T, failures int32, files map[string]string) (*httptest.Server, *atomic.Int32) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= failures {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		body, ok := files[strings.TrimPrefix(r.URL.Path, "/seed/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// recordSleep replaces time: it records the delays asked for.
func recordSleep(delays *[]time.Duration) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		*delays = append(*delays, d)
		return ctx.Err()
	}
}

func TestHTTPSeedRetriesWithBackoffThenSucceeds(t *testing.T) {
	srv, _ := seedServer(t, 3, allSeedFiles)
	var delays []time.Duration
	f := &Fetcher{Attempts: 5, Backoff: time.Second, MaxBackoff: 3 * time.Second, Sleep: recordSleep(&delays)}
	s, err := f.Fetch(context.Background(), srv.URL+"/seed/")
	if err != nil {
		t.Fatal(err)
	}
	checkSeed(t, s, allSeedFiles)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if len(delays) != len(want) {
		t.Fatalf("delays = %v, want %v", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays = %v, want %v", delays, want)
		}
	}
}

func TestHTTPSeedWithoutNetworkConfig(t *testing.T) {
	srv, _ := seedServer(t, 0, map[string]string{"user-data": testUserData, "meta-data": testMetaData})
	s, err := (&Fetcher{}).Fetch(context.Background(), srv.URL+"/seed/")
	if err != nil {
		t.Fatal(err)
	}
	if s.NetworkConfig != nil || string(s.MetaData) != testMetaData {
		t.Fatalf("seed = %+v", s)
	}
}

func TestHTTPSeedGivesUpAfterAttempts(t *testing.T) {
	srv, requests := seedServer(t, 100, allSeedFiles)
	var delays []time.Duration
	f := &Fetcher{Attempts: 3, Sleep: recordSleep(&delays)}
	if _, err := f.Fetch(context.Background(), srv.URL+"/seed/"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the 503", err)
	}
	if requests.Load() != 3 || len(delays) != 2 {
		t.Fatalf("requests = %d, sleeps = %d; want 3 and 2", requests.Load(), len(delays))
	}
}

func TestHTTPSeedStopsWhenContextEnds(t *testing.T) {
	srv, requests := seedServer(t, 100, allSeedFiles)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &Fetcher{Attempts: 10, Sleep: sleepCtx}
	if _, err := f.Fetch(ctx, srv.URL+"/seed/"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if requests.Load() > 1 {
		t.Fatalf("%d requests after cancel", requests.Load())
	}
}

func TestUnreachableSeedFallsBackToTheCache(t *testing.T) {
	store := Store{Dir: t.TempDir()}
	srv, _ := seedServer(t, 0, allSeedFiles)
	url := srv.URL + "/seed/"
	f := &Fetcher{Attempts: 2, Sleep: recordSleep(new([]time.Duration))}
	if _, cached, err := store.FetchSeed(context.Background(), f, url); err != nil || cached {
		t.Fatalf("first fetch: cached=%v err=%v", cached, err)
	}
	srv.Close() // the reboot: the seed server is gone
	s, cached, err := store.FetchSeed(context.Background(), f, url)
	if err != nil || !cached {
		t.Fatalf("after server gone: cached=%v err=%v", cached, err)
	}
	checkSeed(t, s, allSeedFiles)

	if _, _, err := (Store{Dir: t.TempDir()}).FetchSeed(context.Background(), f, url); err == nil {
		t.Fatal("no cache and no server: want an error")
	}
}

func TestMergeOrderImageDefaultsThenCIDATAThenNetworkSeed(t *testing.T) {
	defaults := Seed{Origin: "/usr/share/cairn/cloud-init",
		UserData:      []byte("#cloud-config\nhostname: cairn\ntimezone: UTC\ncairn:\n  update:\n    channel: stable\n    boot_tries: 3\n  modules: [overlay, br_netfilter]\n"),
		MetaData:      []byte("instance-id: image-default\n"),
		NetworkConfig: []byte("version: 2\nethernets:\n  all:\n    match: {name: 'en*'}\n    dhcp4: true\n")}
	cidata := Seed{Origin: "/dev/sdb1",
		UserData: []byte("#cloud-config\nhostname: store-7\ncairn:\n  update:\n    channel: beta\n  modules: [wireguard]\n"),
		MetaData: []byte("instance-id: store-7-v1\n")}
	network := Seed{Origin: "http://cfg.example/store-7/",
		UserData: []byte("#cloud-config\ncairn:\n  update:\n    boot_tries: 5\n")}

	cfg, err := Resolve(defaults, cidata, network)
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.UserData
	if u.Hostname != "store-7" || u.Timezone != "UTC" {
		t.Errorf("hostname %q timezone %q: want CIDATA's store-7, defaults' UTC", u.Hostname, u.Timezone)
	}
	if up := u.Cairn.Update; up.Channel != "beta" || up.BootTries != 5 {
		t.Errorf("update = %+v: want CIDATA's channel beta, network seed's boot_tries 5", up)
	}
	if m := u.Cairn.Modules; len(m) != 1 || m[0] != "wireguard" {
		t.Errorf("modules = %v: a later list replaces an earlier one", m)
	}
	if cfg.MetaData.InstanceID != "store-7-v1" {
		t.Errorf("instance-id = %q", cfg.MetaData.InstanceID)
	}
	if cfg.Network == nil || cfg.Network.Ethernets["all"].Match.Name != "en*" {
		t.Errorf("network-config = %+v: want the defaults' (the only one)", cfg.Network)
	}
}

func TestMergedErrorsNameTheSeedTheValueCameFrom(t *testing.T) {
	defaults := Seed{Origin: "defaults", UserData: []byte("#cloud-config\ncairn:\n  k3s:\n    role: server\n"), MetaData: []byte("instance-id: a\n")}
	cidata := Seed{Origin: "/dev/sdb1", UserData: []byte("#cloud-config\ncairn:\n  k3s:\n    rol: agent\n")}
	_, err := Resolve(defaults, cidata)
	want := `/dev/sdb1:user-data:4:5: cairn.k3s: unknown key "rol" (did you mean "role"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestInstanceIDChangeReRunsFirstBoot(t *testing.T) {
	store := Store{Dir: t.TempDir()}
	steps := func(id string) bool {
		need, err := store.FirstBootNeeded(id)
		if err != nil {
			t.Fatal(err)
		}
		return need
	}
	if !steps("iid-1") {
		t.Fatal("fresh /var: first boot must run")
	}
	if !steps("iid-1") {
		t.Fatal("first boot not marked done yet (power cut mid-way): must run again")
	}
	if err := store.MarkFirstBootDone("iid-1"); err != nil {
		t.Fatal(err)
	}
	if steps("iid-1") {
		t.Fatal("same instance-id after first boot: must not run")
	}
	if !steps("iid-2") {
		t.Fatal("new instance-id: first boot must run again")
	}
}

func TestInvalidConfigKeepsTheLastGoodOne(t *testing.T) {
	store := Store{Dir: t.TempDir()}
	good := Seed{Origin: "cidata", UserData: []byte(testUserData), MetaData: []byte(testMetaData), NetworkConfig: []byte(testNetwork)}
	bad := Seed{Origin: "cidata", UserData: []byte("#cloud-config\nhostname: Bad_Name\n"), MetaData: []byte(testMetaData)}

	if _, err := store.KeepLastGood([]Seed{bad}); !errors.Is(err, ErrNoLastGood) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad config on a fresh device: err = %v, want ErrInvalid and ErrNoLastGood", err)
	}
	cfg, err := store.KeepLastGood([]Seed{good})
	if err != nil || cfg.Hostname() != "store-1" {
		t.Fatalf("good config: %v, %v", cfg, err)
	}
	cfg, err = store.KeepLastGood([]Seed{bad})
	var verrs ValidationErrors
	if !errors.As(err, &verrs) || len(verrs) != 1 || verrs[0].Line != 2 {
		t.Fatalf("bad config: err = %v, want one validation error on line 2", err)
	}
	if cfg == nil || cfg.Hostname() != "store-1" || cfg.Network == nil {
		t.Fatalf("bad config: got %+v, want the last good one", cfg)
	}
	// Survives a restart: a fresh Store on the same /var.
	cfg, err = Store{Dir: store.Dir}.LastGood()
	if err != nil || cfg.Hostname() != "store-1" {
		t.Fatalf("LastGood after restart: %v, %v", cfg, err)
	}
}
