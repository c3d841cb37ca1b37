package config

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// device is a fake device root: image defaults, a by-label directory,
// a kernel command line and a state directory, all in a temp tree.
type device struct {
	t    *testing.T
	root string
	opts Options
}

func newDevice(t *testing.T) *device {
	root := t.TempDir()
	d := &device{t: t, root: root, opts: Options{
		Root: root,
		// No waiting between attempts: the retries themselves are tested
		// in cloud-init.
		Fetcher: &cloudinit.Fetcher{Attempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }},
	}}
	for _, dir := range []string{DefaultImageDefaults, DefaultByLabelDir, "proc", "sys/class/block"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *device) write(rel, content string) {
	d.t.Helper()
	p := filepath.Join(d.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// plugCard attaches a CIDATA FAT image made with mkfs.vfat and mcopy, the
// way udev would list it: /dev/disk/by-label/CIDATA -> the image.
func (d *device) plugCard(files map[string]string) string {
	d.t.Helper()
	img := makeFAT(d.t, "CIDATA", files)
	link := filepath.Join(d.root, DefaultByLabelDir, "CIDATA")
	os.Remove(link)
	if err := os.Symlink(img, link); err != nil {
		d.t.Fatal(err)
	}
	return img
}

func (d *device) load() *Result {
	d.t.Helper()
	r, err := Load(context.Background(), d.opts)
	if err != nil {
		d.t.Fatal(err)
	}
	return r
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (scripts/install-deps.sh)", name)
		}
		t.Fatalf("%s not installed: run scripts/install-deps.sh", name)
	}
}

func makeFAT(t *testing.T, label string, files map[string]string) string {
	t.Helper()
	needTool(t, "mkfs.vfat")
	needTool(t, "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "cidata.img")
	run(t, "mkfs.vfat", "-C", "-n", label, img, "2048")
	for name, content := range files {
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "mcopy", "-i", img, src, "::"+name)
	}
	return img
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// seedServer serves a NoCloud seed under /seed/ and counts requests.
func seedServer(t *testing.T, files map[string]string) (*httptest.Server, *atomic.Int32) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
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

const defaultsUserData = `#cloud-config
hostname: cairn-default
timezone: UTC
cairn:
  update:
    channel: stable
    metadata_url: https://updates.example/tuf/
`

func TestLoadMergesImageDefaultsCIDATAAndTheHTTPSeed(t *testing.T) {
	d := newDevice(t)
	d.write(DefaultImageDefaults+"/user-data", defaultsUserData)
	d.write(DefaultImageDefaults+"/meta-data", "instance-id: image\n")
	img := d.plugCard(map[string]string{
		"user-data": "#cloud-config\nhostname: store-0042\ncairn:\n  update:\n    channel: beta\n",
		"meta-data": "instance-id: card-1\n",
	})
	srv, _ := seedServer(t, map[string]string{
		"user-data": "#cloud-config\ntimezone: Europe/Berlin\n",
		"meta-data": "instance-id: net-7\n",
	})
	d.write(DefaultCmdline, "console=ttyS0 ds=nocloud;s="+srv.URL+"/seed/ quiet\n")

	r := d.load()
	if len(r.Invalid) > 0 || len(r.SourceErrors) > 0 || r.LastGood {
		t.Fatalf("invalid %v, source errors %v, last good %v", r.Invalid, r.SourceErrors, r.LastGood)
	}
	want := []string{filepath.Join(d.root, DefaultImageDefaults), img, srv.URL + "/seed/"}
	if !slices.Equal(r.Sources, want) {
		t.Errorf("sources %q, want %q", r.Sources, want)
	}
	ud := r.Config.UserData
	if ud.Hostname != "store-0042" || ud.Timezone != "Europe/Berlin" || ud.Cairn.Update.Channel != "beta" ||
		ud.Cairn.Update.MetadataURL != "https://updates.example/tuf/" {
		t.Errorf("merged user-data: hostname %q timezone %q channel %q metadata_url %q",
			ud.Hostname, ud.Timezone, ud.Cairn.Update.Channel, ud.Cairn.Update.MetadataURL)
	}
	if r.InstanceID() != "net-7" || !r.FirstBoot {
		t.Errorf("instance-id %q, first boot %v; want net-7 on a first boot", r.InstanceID(), r.FirstBoot)
	}
	if err := r.MarkFirstBootDone(); err != nil {
		t.Fatal(err)
	}
	if r := d.load(); r.FirstBoot {
		t.Errorf("first boot again after MarkFirstBootDone")
	}
}

func TestInstanceIDChangeMeansFirstBootAgain(t *testing.T) {
	d := newDevice(t)
	d.plugCard(map[string]string{"user-data": "#cloud-config\nhostname: a\n", "meta-data": "instance-id: a\n"})
	r := d.load()
	if !r.FirstBoot {
		t.Fatalf("fresh /var is not a first boot: %+v", r)
	}
	if err := r.MarkFirstBootDone(); err != nil {
		t.Fatal(err)
	}
	d.plugCard(map[string]string{"user-data": "#cloud-config\nhostname: b\n", "meta-data": "instance-id: b\n"})
	if r := d.load(); !r.FirstBoot || r.InstanceID() != "b" {
		t.Errorf("instance-id %q, first boot %v after the operator changed it", r.InstanceID(), r.FirstBoot)
	}
}

func TestInvalidCardKeepsTheLastGoodConfigAndReportsLineAndColumn(t *testing.T) {
	d := newDevice(t)
	d.plugCard(map[string]string{"user-data": "#cloud-config\nhostname: good\n", "meta-data": "instance-id: one\n"})
	if r := d.load(); r.Config == nil || r.Config.UserData.Hostname != "good" {
		t.Fatalf("first load: %+v", r)
	}
	img := d.plugCard(map[string]string{
		"user-data": "#cloud-config\nhostname: better\nwrite_files:\n  - path: /etc/x\n    permisions: \"0600\"\n",
		"meta-data": "instance-id: two\n",
	})
	r := d.load()
	if r.Config == nil || r.Config.UserData.Hostname != "good" || r.InstanceID() != "one" || !r.LastGood {
		t.Fatalf("kept config %+v, last good %v; want hostname good, instance one", r.Config, r.LastGood)
	}
	if len(r.Invalid) != 1 {
		t.Fatalf("errors %v, want one", r.Invalid)
	}
	e := r.Invalid[0]
	if e.File != img+":user-data" || e.Line != 5 || e.Column != 5 || !strings.Contains(e.Message, "permissions") {
		t.Errorf("error %q, want %s:user-data:5:5 suggesting permissions", e.Error(), img)
	}
}

func TestInvalidConfigOnANewDeviceGivesNoConfig(t *testing.T) {
	d := newDevice(t)
	d.plugCard(map[string]string{"user-data": "#cloud-config\nhostname: Not_A_Host\n", "meta-data": "instance-id: x\n"})
	r := d.load()
	if r.Config != nil || r.LastGood || len(r.Invalid) != 1 || r.Invalid[0].Line != 2 || r.Invalid[0].Column != 11 {
		t.Errorf("config %+v, last good %v, errors %v; want none and one error at 2:11", r.Config, r.LastGood, r.Invalid)
	}
}

func TestUnreachableSeedUsesItsCachedCopy(t *testing.T) {
	d := newDevice(t)
	srv, _ := seedServer(t, map[string]string{"user-data": "#cloud-config\nhostname: from-net\n", "meta-data": "instance-id: n\n"})
	seed := srv.URL + "/seed/"
	d.write(DefaultCmdline, `ds="nocloud;s=`+seed+`"`)
	if r := d.load(); r.Config == nil || r.Config.UserData.Hostname != "from-net" {
		t.Fatalf("first load: %+v %v", r.Config, r.SourceErrors)
	}
	srv.Close()
	r := d.load()
	if r.Config == nil || r.Config.UserData.Hostname != "from-net" || len(r.SourceErrors) > 0 {
		t.Fatalf("with the server gone: config %+v, source errors %v", r.Config, r.SourceErrors)
	}
	if want := []string{seed + " (cached)"}; !slices.Equal(r.Sources, want) {
		t.Errorf("sources %q, want %q", r.Sources, want)
	}
}

func TestUnreadableSourceKeepsTheLastGoodConfig(t *testing.T) {
	d := newDevice(t)
	d.write(DefaultImageDefaults+"/meta-data", "instance-id: base\n")
	d.plugCard(map[string]string{"user-data": "#cloud-config\nhostname: on-card\n"})
	if r := d.load(); r.Config == nil || r.Config.UserData.Hostname != "on-card" {
		t.Fatalf("first load: %+v %v %v", r.Config, r.Invalid, r.SourceErrors)
	}
	// A card whose file system no longer reads must not reset the box to
	// the image defaults.
	junk := filepath.Join(t.TempDir(), "junk.img")
	if err := os.WriteFile(junk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(d.root, DefaultByLabelDir, "CIDATA")
	os.Remove(link)
	if err := os.Symlink(junk, link); err != nil {
		t.Fatal(err)
	}
	r := d.load()
	if r.Config == nil || r.Config.UserData.Hostname != "on-card" || !r.LastGood || len(r.SourceErrors) != 1 ||
		!strings.Contains(r.SourceErrors[0], junk) {
		t.Errorf("config %+v, last good %v, source errors %q", r.Config, r.LastGood, r.SourceErrors)
	}
}

func TestFileSeedFromTheKernelCommandLine(t *testing.T) {
	d := newDevice(t)
	dir := t.TempDir()
	for name, content := range map[string]string{"user-data": "#cloud-config\nhostname: from-file\n", "meta-data": "instance-id: f\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.write(DefaultCmdline, `ds=nocloud\;s=file://`+dir+"/")
	r := d.load()
	if r.Config == nil || r.Config.UserData.Hostname != "from-file" {
		t.Errorf("config %+v, errors %v %v", r.Config, r.Invalid, r.SourceErrors)
	}
}

func TestNoSourceAtAllIsNoConfigAndNoError(t *testing.T) {
	r := newDevice(t).load()
	if r.Config != nil || len(r.Invalid) > 0 || len(r.SourceErrors) > 0 || len(r.Sources) > 0 || r.FirstBoot {
		t.Errorf("result %+v", r)
	}
}
