package update

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// serveRange writes what the server would, cut to n bytes when n >= 0,
// and calls cut on the bytes first (for corruption).
func serveRange(w http.ResponseWriter, r *http.Request, data []byte, limit int, cut func([]byte)) {
	var start int
	if rng := r.Header.Get("Range"); rng != "" {
		fmt.Sscanf(rng, "bytes=%d-", &start)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
	}
	body := append([]byte(nil), data[start:]...)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	if cut != nil {
		cut(body)
	}
	if limit >= 0 && limit < len(body) {
		body = body[:limit]
	}
	w.Write(body)
}

// Faults the server can have, each with how a retry fares: the install
// either gets through with retries, or fails with the named error and
// the next attempt, against a healthy server, finishes.
func TestInstallServerFaults(t *testing.T) {
	rel := makeRelease(t, 2<<20, 64<<10, 11)
	data, err := os.ReadFile(rel.zst)
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	type fault = func(w http.ResponseWriter, r *http.Request, n int) bool
	status := func(code int) fault {
		return func(w http.ResponseWriter, r *http.Request, n int) bool { w.WriteHeader(code); return true }
	}
	stall := func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:half])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	}
	truncate := func(w http.ResponseWriter, r *http.Request, n int) bool {
		serveRange(w, r, data, half/2, nil)
		return true
	}
	corrupt := func(w http.ResponseWriter, r *http.Request, n int) bool {
		serveRange(w, r, data, -1, func(b []byte) { b[len(b)/2] ^= 0x40 })
		return true
	}
	once := func(f fault) fault {
		return func(w http.ResponseWriter, r *http.Request, n int) bool { return n == 1 && f(w, r, n) }
	}
	cases := []struct {
		name    string
		fault   fault
		retries int
		want    error // nil: the install gets through by retrying
	}{
		{"503 twice", func(w http.ResponseWriter, r *http.Request, n int) bool { return n <= 2 && status(503)(w, r, n) }, 3, nil},
		{"500 always", status(500), 2, ErrServer},
		{"404", status(404), 2, nil}, // want set below: not retried, no sentinel
		{"stall once", once(stall), 2, nil},
		{"stall always", stall, 1, ErrStalled},
		{"truncate once", once(truncate), 2, nil},
		{"truncate always", truncate, -1, ErrTruncated},
		{"corrupt once", once(corrupt), 2, nil},
		{"corrupt always", corrupt, 1, ErrCorruptFrame},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			srv := serve(t, rel)
			dir := t.TempDir()
			slot := newSlot(t, dir, 2<<20)
			req := InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot}
			srv.setFault(c.fault)
			in := quick(dir)
			in.Retries = c.retries
			err := in.Install(context.Background(), req, nil)
			reqs := srv.requests()
			t.Logf("%d requests %q: %v", len(reqs), reqs, err)
			switch {
			case c.name == "404":
				if err == nil || !strings.Contains(err.Error(), "404") || len(reqs) != 1 {
					t.Fatalf("Install = %v after %d requests, want one 404 and no retry", err, len(reqs))
				}
			case c.want == nil:
				if err != nil {
					t.Fatalf("Install = %v, want it to get through by retrying", err)
				}
				mustEqualFile(t, slot, rel.image, 2<<20)
				return
			case !errors.Is(err, c.want):
				t.Fatalf("Install = %v, want %v", err, c.want)
			}
			srv.setFault(nil)
			if err := quick(dir).Install(context.Background(), req, nil); err != nil {
				t.Fatalf("next attempt against a healthy server: %v", err)
			}
			mustEqualFile(t, slot, rel.image, 2<<20)
			t.Logf("next attempt: requests %q", srv.requests())
		})
	}
}

// A full /var: the checkpoint cannot be written. The install stops with
// a clear error, and once there is space again the next attempt resumes
// from the last checkpoint that was written and finishes.
func TestInstallWithAFullVarStopsClearlyAndResumesOnceThereIsSpace(t *testing.T) {
	requireRoot(t)
	rel := makeRelease(t, 2<<20, 32<<10, 12)
	srv := serve(t, rel)
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs on the state directory: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(state, unix.MNT_DETACH) })
	slot := newSlot(t, t.TempDir(), 2<<20)
	req := InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: slot}

	// A first attempt gets a third of the way, leaving a checkpoint.
	ctx, cancel := context.WithCancel(context.Background())
	at := rel.manifest.Image.CompressedSize / 3
	killed := quick(state)
	killed.Client = &http.Client{Transport: &killTransport{at: at, cancel: cancel}}
	if err := killed.Install(ctx, req, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("first attempt: %v", err)
	}
	before, err := os.ReadFile(filepath.Join(state, CheckpointName))
	if err != nil {
		t.Fatalf("no checkpoint after the first attempt: %v", err)
	}
	// Then /var fills up.
	filler := filepath.Join(state, "logs")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{'x'}, 128<<10), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the state directory: %v, want ENOSPC", err)
	}
	err = quick(state).Install(context.Background(), req, nil)
	if !errors.Is(err, ErrCheckpoint) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Install on a full /var = %v, want ErrCheckpoint and ENOSPC", err)
	}
	t.Log(err)
	after, err := os.ReadFile(filepath.Join(state, CheckpointName))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the last good checkpoint changed or went missing (%v)", err)
	}
	// Space is back: the next attempt resumes from the old checkpoint.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	srv.setFault(nil)
	if err := quick(state).Install(context.Background(), req, nil); err != nil {
		t.Fatalf("once there is space: %v", err)
	}
	if reqs := srv.requests(); len(reqs) != 1 || !strings.HasPrefix(reqs[0], "bytes=") {
		t.Errorf("requests %q, want one resuming with a Range", reqs)
	}
	mustEqualFile(t, slot, rel.image, 2<<20)
}

// The slot must not be in use: mounted (as a file or a block device),
// held by a device-mapper device such as dm-verity on the booted slot, or
// backing a loop device. Each is refused before any request.
func TestInstallRefusesATargetInUse(t *testing.T) {
	rel := makeRelease(t, 1<<20, 64<<10, 13)
	srv := serve(t, rel)
	dir := t.TempDir()
	slot := newSlot(t, dir, 2<<20)
	fakeRoot := func(mountinfo string, extra map[string]string) string {
		root := t.TempDir()
		files := map[string]string{"proc/self/mountinfo": "22 1 0:99 / / rw shared:1 - tmpfs none rw\n" + mountinfo}
		for k, v := range extra {
			files[k] = v
		}
		for rel, content := range files {
			p := filepath.Join(root, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	try := func(name, root, device string) {
		t.Helper()
		in := &Installer{StateDir: dir, Root: root}
		err := in.Install(context.Background(), InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: device}, nil)
		if !errors.Is(err, ErrTargetMounted) {
			t.Errorf("%s: Install = %v, want ErrTargetMounted", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	esc := strings.ReplaceAll(slot, " ", `\040`)
	try("file mounted on", fakeRoot("40 22 0:50 / "+esc+" rw - ext4 /dev/x rw\n", nil), slot)
	try("file as mount source", fakeRoot("40 22 7:0 / /mnt rw - ext4 "+esc+" rw\n", nil), slot)
	try("file backing a loop device", fakeRoot("", map[string]string{"sys/block/loop3/loop/backing_file": slot + "\n"}), slot)

	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("block device cases need root for mknod")
		}
		t.Fatal("block device cases need root (CI runs as root); -short skips them")
	}
	node := filepath.Join(t.TempDir(), "slot")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))); err != nil {
		t.Fatal(err)
	}
	try("block device mounted", fakeRoot("41 22 7:200 / /media rw - ext4 /dev/loop200 rw\n", nil), node)
	try("block device held by dm-verity", fakeRoot("", map[string]string{"sys/dev/block/7:200/holders/dm-0": ""}), node)

	// The real kernel: a loop device with a mounted file system is
	// refused from the real mountinfo and, with that check blinded, by the
	// kernel's O_EXCL; the file behind it is refused from the real sysfs.
	backing := newSlot(t, t.TempDir(), 8<<20)
	loop := mountedLoop(t, backing)
	try("mounted loop device, from /proc", "", loop)
	try("mounted loop device, by O_EXCL", fakeRoot("", nil), loop)
	try("file behind a loop device, from /sys", "", backing)
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests for refused installs", n)
	}
}

// mountedLoop attaches file to a loop device, makes an ext4 file system
// on it and mounts it, all undone at cleanup.
func mountedLoop(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", file).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	if out, err := exec.Command("mkfs.ext4", "-q", loop).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 (Debian package e2fsprogs): %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if err := unix.Mount(loop, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s: %v", loop, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	return loop
}

// A block device as the slot, as on a device: a loop device, unmounted.
func TestInstallIntoABlockDevice(t *testing.T) {
	requireRoot(t)
	rel := makeRelease(t, 3<<20+100, 256<<10, 14)
	srv := serve(t, rel)
	backing := newSlot(t, t.TempDir(), 4<<20)
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	in := &Installer{StateDir: t.TempDir(), CheckpointBytes: 256 << 10}
	if err := in.Install(context.Background(), InstallRequest{Target: rel.target(srv.URL), Manifest: rel.manifest, Device: loop}, nil); err != nil {
		t.Fatal(err)
	}
	mustEqualFile(t, backing, rel.image, 4<<20)
}
