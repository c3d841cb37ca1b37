package host

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteFilesEncodingsPermissionsOwnersAndDefer(t *testing.T) {
	needRoot(t)
	root, sys := imageRoot(t)
	h := &Host{Root: root, Sys: sys}
	gzb64 := base64.StdEncoding.EncodeToString(gz(t, "zipped\n"))
	ud := `#cloud-config
users:
  - name: ops
write_files:
  - path: /var/lib/app/plain
    content: "hello\n"
  - path: /var/lib/app/b64
    encoding: b64
    content: ` + base64.StdEncoding.EncodeToString([]byte("decoded\n")) + `
    permissions: "0600"
  - path: /var/lib/app/gzb64
    encoding: gz+b64
    content: ` + gzb64 + `
  - path: /var/lib/app/suid
    content: x
    permissions: "04755"
  - path: /var/lib/app/log
    content: "first\n"
    append: true
  - path: /var/lib/app/log
    content: "second\n"
    append: true
  - path: /var/home/ops/app.conf
    content: "mine\n"
    owner: ops:adm
    permissions: "0640"
    defer: true
`
	cfg := resolve(t, ud, "instance-id: w\n")
	apply(t, h, cfg, true)
	for _, c := range []struct {
		path, content string
		mode          os.FileMode
		uid, gid      uint32
	}{
		{"var/lib/app/plain", "hello\n", 0o644, 0, 0},
		{"var/lib/app/b64", "decoded\n", 0o600, 0, 0},
		{"var/lib/app/gzb64", "zipped\n", 0o644, 0, 0},
		{"var/lib/app/suid", "x", 0o755 | os.ModeSetuid, 0, 0},
		{"var/lib/app/log", "first\nsecond\n", 0o644, 0, 0},
		{"var/home/ops/app.conf", "mine\n", 0o640, 1000, 4},
	} {
		p := filepath.Join(root, c.path)
		b, err := os.ReadFile(p)
		fi, serr := os.Stat(p)
		if err != nil || serr != nil {
			t.Errorf("%s: %v %v", c.path, err, serr)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if string(b) != c.content || fileMode(fi) != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: %q %v %d:%d, want %q %v %d:%d", c.path, b, fileMode(fi), st.Uid, st.Gid, c.content, c.mode, c.uid, c.gid)
		}
	}
	if again := apply(t, h, cfg, false); len(again) != 0 {
		t.Errorf("second apply: %v", again)
	}
	// A file owned by a user from users is refused unless deferred: the
	// user does not exist yet when it is written.
	bad := resolve(t, "#cloud-config\nusers: [{name: dev}]\nwrite_files:\n  - path: /var/x\n    owner: dev\n", "instance-id: w2\n")
	if _, err := h.Apply(context.Background(), bad, true); err == nil || !strings.Contains(err.Error(), "defer: true") {
		t.Errorf("owner before users: %v", err)
	}
}

func TestDecodeContentRejectsBrokenEncodings(t *testing.T) {
	for _, c := range []struct{ content, encoding string }{
		{"not base64!", "b64"},
		{"not gzip", "gzip"},
		{base64.StdEncoding.EncodeToString([]byte("plain")), "gz+b64"},
	} {
		if _, err := DecodeContent(c.content, c.encoding); err == nil {
			t.Errorf("DecodeContent(%q, %s) accepted", c.content, c.encoding)
		}
	}
}

func TestUsersWithHashedPasswordsPassPwckAndGrpck(t *testing.T) {
	needRoot(t)
	needTool(t, "openssl")
	needTool(t, "pwck")
	needTool(t, "grpck")
	hash, err := exec.Command("openssl", "passwd", "-6", "-salt", "saltsalt", "secret").Output()
	if err != nil {
		t.Fatal(err)
	}
	h6 := strings.TrimSpace(string(hash))
	root, sys := imageRoot(t)
	h := &Host{Root: root, Sys: sys}
	ud := `#cloud-config
users:
  - name: ops
    groups: [adm, operators]
    shell: /bin/bash
    lock_passwd: false
    hashed_passwd: "` + h6 + `"
  - name: viewer
    groups: operators
    hashed_passwd: "` + h6 + `"
    ssh_authorized_keys: [ssh-ed25519 AAAAviewer viewer@laptop]
`
	apply(t, h, resolve(t, ud, "instance-id: u\n"), false)
	extra := filepath.Join(root, extraDir)
	want := map[string]string{
		"passwd": "ops:x:1000:1000::/var/home/ops:/bin/bash\nviewer:x:1001:1001::/var/home/viewer:/bin/sh\n",
		"shadow": "ops:" + h6 + ":::::::\nviewer:!" + h6 + ":::::::\n",
		"group":  "ops:x:1000:\nviewer:x:1001:\nadm:x:4:ops\noperators:x:1002:ops,viewer\n",
	}
	for name, w := range want {
		if got := string(read(t, filepath.Join(extra, name))); got != w {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, w)
		}
	}
	// The shadow tools read the files as glibc would; -r: read-only, and
	// homes and shells are checked on this machine, so only the format
	// counts.
	if out, err := exec.Command("pwck", "-r", "-q", filepath.Join(extra, "passwd"), filepath.Join(extra, "shadow")).CombinedOutput(); err != nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.Contains(l, "directory") && !strings.Contains(l, "no group") {
				t.Errorf("pwck: %v: %s", err, l)
			}
		}
	}
	gshadow := filepath.Join(t.TempDir(), "gshadow")
	os.WriteFile(gshadow, []byte("ops:!::\nviewer:!::\nadm:!::ops\noperators:!::ops,viewer\n"), 0o600)
	if out, err := exec.Command("grpck", "-r", filepath.Join(extra, "group"), gshadow).CombinedOutput(); err != nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			// Members are looked up in this machine's accounts.
			if !strings.Contains(l, "no user") && !strings.HasPrefix(l, "delete member") && !strings.Contains(l, "no changes") {
				t.Errorf("grpck: %v: %s", err, l)
			}
		}
	}
	// Removing a user from the config removes its account and keys; the
	// remaining one keeps its uid.
	acts := apply(t, h, resolve(t, "#cloud-config\nusers: [{name: viewer}]\n", "instance-id: u\n"), false)
	if got := string(read(t, filepath.Join(extra, "passwd"))); got != "viewer:x:1001:1001::/var/home/viewer:/bin/sh\n" {
		t.Errorf("passwd after removing ops: %q", got)
	}
	if !contains(acts, "remove /var/lib/cairn/etc/ssh/authorized_keys/viewer") {
		t.Errorf("actions %v", acts)
	}
}

func TestBootcmdEveryBootRuncmdOnlyOnFirstBootInOrder(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	ud := "#cloud-config\nbootcmd:\n  - echo boot1 $INSTANCE_ID >> " + log + "\n  - [sh, -c, 'echo boot2 >> " + log + "']\n" +
		"runcmd:\n  - echo run1 >> " + log + "\n  - exit 3\n  - echo run3 >> " + log + "\n"
	cfg := resolve(t, ud, "instance-id: i-9\n")
	c := &Commands{Output: &bytes.Buffer{}}
	ctx := context.Background()
	if err := c.BootCmd(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	err := c.RunCmd(ctx, cfg, true)
	if err == nil || !strings.Contains(err.Error(), `runcmd[1] "/bin/sh -c exit 3"`) {
		t.Errorf("runcmd error %v, want runcmd[1] named", err)
	}
	// Second boot of the same instance: bootcmd again, runcmd not.
	if err := c.BootCmd(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.RunCmd(ctx, cfg, false); err != nil {
		t.Fatal(err)
	}
	if got, want := string(read(t, log)), "boot1 i-9\nboot2\nrun1\nrun3\nboot1 i-9\nboot2\n"; got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestHostnameAndSysctlOnTheRealKernelInPrivateNamespaces applies a host
// name and net.* parameters with the real Kernel from a thread in its own
// UTS and network namespaces: per-namespace, so the machine is untouched.
func TestHostnameAndSysctlOnTheRealKernelInPrivateNamespaces(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("/var/lib/cairn/etc/hostname", filepath.Join(root, "etc/hostname"))
	cfg := resolve(t, "#cloud-config\nhostname: ns-box\ncairn:\n  sysctl:\n    net.ipv4.ip_forward: 1\n    net.ipv4.conf.all.rp_filter: 2\n", "instance-id: k\n")
	type result struct {
		first, second []Action
		name, fwd     string
		err           error
	}
	done := make(chan result)
	go func() {
		// The thread stays locked and ends with the goroutine, taking
		// its namespaces with it.
		runtime.LockOSThread()
		var r result
		if r.err = unix.Unshare(unix.CLONE_NEWUTS | unix.CLONE_NEWNET); r.err != nil {
			done <- r
			return
		}
		h := &Host{Root: root, Sys: Kernel{}}
		if r.first, r.err = h.Apply(context.Background(), cfg, false); r.err == nil {
			r.second, r.err = h.Apply(context.Background(), cfg, false)
		}
		r.name, _ = Kernel{}.Hostname()
		r.fwd, _ = Kernel{}.Sysctl("net/ipv4/ip_forward")
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.name != "ns-box" || strings.TrimSpace(r.fwd) != "1" {
		t.Errorf("in the namespaces: hostname %q, ip_forward %q", r.name, r.fwd)
	}
	for _, want := range []string{"set-hostname ns-box", "sysctl net.ipv4.ip_forward=1", "sysctl net.ipv4.conf.all.rp_filter=2"} {
		if !contains(r.first, want) {
			t.Errorf("first apply %v lacks %s", r.first, want)
		}
	}
	if len(r.second) != 0 {
		t.Errorf("second apply: %v", r.second)
	}
	if name, _ := os.Hostname(); name == "ns-box" {
		t.Errorf("the machine's host name changed")
	}
}
