package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/update"
	"github.com/cairn-edge/cairn/images/release"
	"github.com/cairn-edge/cairn/partitions"
)

// The test binary doubles as a non-root client: run with dialEnv set it
// calls GET /v1/status on that socket and prints what happened.
const dialEnv = "CAIRN_API_TEST_DIAL"

func TestMain(m *testing.M) {
	if sock := os.Getenv(dialEnv); sock != "" {
		_, err := NewClient(sock).Status(context.Background())
		switch {
		case errors.Is(err, ErrPeerRefused):
			fmt.Printf("refused: %v\n", err)
		case errors.Is(err, ErrNotRunning):
			fmt.Printf("cannot connect: %v\n", err)
		default:
			fmt.Printf("served: %v\n", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fakeEngine struct {
	checkErr, applyErr, rollbackErr error
	applied, rolledBack             int
}

func (f *fakeEngine) Status() update.Status {
	return update.Status{State: update.State{Phase: update.PhaseCommitted, Version: "1.1.0",
		SlotVersions: map[partitions.Slot]string{partitions.SlotB: "1.1.0"}},
		Booted: partitions.SlotB, Policy: update.RebootImmediate}
}

func (f *fakeEngine) CheckNow(context.Context) (*update.Offer, error) {
	if f.checkErr != nil {
		return nil, f.checkErr
	}
	return &update.Offer{Channel: "stable", Manifest: &release.Manifest{Version: "1.2.0"}}, nil
}

func (f *fakeEngine) Apply(context.Context) error {
	f.applied++
	return f.applyErr
}

func (f *fakeEngine) Rollback(context.Context) error {
	f.rolledBack++
	return f.rollbackErr
}

func slots() (*agent.Status, error) {
	return &agent.Status{Bootloader: "grub", Booted: partitions.SlotB, Slots: []agent.SlotRow{
		{Slot: partitions.SlotA, Priority: 1, OK: true}, {Slot: partitions.SlotB, Priority: 2, OK: true, Booted: true}}}, nil
}

// serve starts a server on a socket under a new directory.
func serve(t *testing.T, eng Engine) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "cairn", "agent.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Server{Engine: eng, Slots: slots}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
	return sock
}

func TestSocketIsRootOnly(t *testing.T) {
	sock := serve(t, &fakeEngine{})
	for path, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	// A stale socket from a killed agent is replaced.
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestStatusCheckApplyRollbackOverTheSocket(t *testing.T) {
	eng := &fakeEngine{}
	sock := serve(t, eng)
	c := NewClient(sock)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Update.Phase != update.PhaseCommitted || st.Slots[1].Version != "1.1.0" || st.Booted != partitions.SlotB {
		t.Fatalf("status %+v %+v", st.Status, st.Update)
	}
	var text strings.Builder
	if err := st.WriteText(&text); err != nil || !strings.Contains(text.String(), "update: committed 1.1.0") {
		t.Fatalf("status text: %v\n%s", err, text.String())
	}
	res, err := c.Check(ctx)
	if err != nil || !res.Installing || res.Offer.Manifest.Version != "1.2.0" {
		t.Fatalf("check: %+v, %v", res, err)
	}
	eng.checkErr = fmt.Errorf("update channel stable: 1.2.0: %w", update.ErrUpToDate)
	if res, err = c.Check(ctx); err != nil || res.Installing || !strings.Contains(res.Message, "already at the newest") {
		t.Fatalf("check when up to date: %+v, %v", res, err)
	}
	eng.checkErr = errors.New("channel refresh: connection refused")
	if _, err = c.Check(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("check with the channel down: %v", err)
	}
	if _, err := c.Apply(ctx); err != nil || eng.applied != 1 {
		t.Fatalf("apply: %v (%d calls)", err, eng.applied)
	}
	eng.applyErr = fmt.Errorf("apply: state committed: %w", update.ErrNothingToApply)
	if _, err := c.Apply(ctx); !errors.Is(err, update.ErrNothingToApply) || err.Error() != eng.applyErr.Error() {
		t.Fatalf("apply with nothing installed: %v", err)
	}
	eng.rollbackErr = fmt.Errorf("rollback to slot A: %w", update.ErrNoRollback)
	if _, err := c.Rollback(ctx); !errors.Is(err, update.ErrNoRollback) || eng.rolledBack != 1 {
		t.Fatalf("rollback: %v", err)
	}
	eng.rollbackErr = update.ErrBusy
	if _, err := c.Rollback(ctx); !errors.Is(err, update.ErrBusy) {
		t.Fatalf("rollback during an update: %v", err)
	}
}

func TestClientWithoutAgentSaysNotRunning(t *testing.T) {
	_, err := NewClient(filepath.Join(t.TempDir(), "agent.sock")).Status(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status without an agent: %v", err)
	}
}

// asNobody runs the test binary as uid 65534 against sock and returns
// what it printed.
func asNobody(t *testing.T, sock string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("running a client as another user needs root")
		}
		t.Fatal("this test must run as root (CI does) to start a client as uid 65534")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	openUp(t, dir, 0o755)
	bin := filepath.Join(dir, "api.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{dialEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid 65534: %v\n%s", err, out)
	}
	return string(out)
}

func TestNonRootPeerIsRefused(t *testing.T) {
	eng := &fakeEngine{}
	sock := serve(t, eng)
	// As installed, the socket's mode keeps others from connecting at all.
	if out := asNobody(t, sock); !strings.HasPrefix(out, "cannot connect") || !strings.Contains(out, "permission denied") {
		t.Fatalf("non-root client on a 0600 socket: %s", out)
	}
	// With the modes opened up, the server still refuses by SO_PEERCRED.
	openUp(t, sock, 0o777)
	out := asNobody(t, sock)
	if !strings.HasPrefix(out, "refused") || !strings.Contains(out, "peer uid 65534") {
		t.Fatalf("non-root client on an open socket: %s", out)
	}
	t.Logf("non-root client: %s", strings.TrimSpace(out))
	// And root still is served.
	if _, err := NewClient(sock).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// openUp gives path and every directory above it, up to the temporary
// directory, mode perm, so that another user can reach path.
func openUp(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	for p := path; strings.HasPrefix(p, os.TempDir()+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
	}
}
