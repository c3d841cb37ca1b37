package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-edge/cairn/tests/k3s-standin/k3stest"
)

func needK3s(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a k3s server (kube-apiserver); skipped under -short")
	}
}

func k3sCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, env := k3stest.Binary(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEtcdSnapshotSaveOnAClusterInitServer(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "snap", "--cluster-init")
	dir := filepath.Join(t.TempDir(), "snaps")
	out, err := k3sCommand(t, "etcd-snapshot", "save", "--data-dir", s.DataDir, "--dir", dir, "--name", "pre-upgrade")
	if err != nil {
		t.Fatalf("etcd-snapshot save: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "pre-upgrade-") {
		t.Fatalf("snapshots %v, %v", entries, err)
	}
	info, _ := entries[0].Info()
	if info.Size() < 4096 {
		t.Fatalf("snapshot of %d bytes", info.Size())
	}
}

func TestEtcdSnapshotNeedsEtcd(t *testing.T) {
	needK3s(t)
	out, err := k3sCommand(t, "etcd-snapshot", "save", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, "etcd datastore disabled") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func TestAgentWithAWrongTokenIsRefused(t *testing.T) {
	needK3s(t)
	s := k3stest.StartServer(t, "token-check")
	out, err := k3sCommand(t, "agent", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil {
		t.Fatalf("agent started with a missing config file: %s", out)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("data-dir: "+t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = k3sCommand(t, "agent", "--config", cfg, "--server", s.URL, "--token", "wrong")
	if err == nil || !strings.Contains(out, "401 Unauthorized") {
		t.Fatalf("got %v: %s", err, out)
	}
}

func TestVersionAndUnknownFlags(t *testing.T) {
	needK3s(t)
	out, err := k3sCommand(t, "--version")
	if err != nil || !strings.HasPrefix(out, "k3s version v") {
		t.Fatalf("--version: %v %q", err, out)
	}
	out, err = k3sCommand(t, "server", "--data-dir", t.TempDir(), "--frobnicate")
	if err == nil || !strings.Contains(out, "frobnicate") {
		t.Fatalf("unknown flag: %v %q", err, out)
	}
}

// TestOnlyTheServerNotifiesSystemd listens on a NOTIFY_SOCKET as systemd
// does for k3s's Type=notify unit, with the sender's credentials: READY=1
// must come from the server's own process, and nothing from its children
// (systemd rejects those: "reception only permitted for main PID").
func TestOnlyTheServerNotifiesSystemd(t *testing.T) {
	needK3s(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	s := k3stest.StartServer(t, "notify")
	ready := false
	// After the server's READY=1, a little longer for a late one.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if err := conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if ready {
				break
			}
			t.Fatalf("no READY=1 from the server (pid %d): %v", s.PID(), err)
		}
		pid := senderPID(t, oob[:oobn])
		msg := strings.TrimSpace(string(buf[:n]))
		if pid != s.PID() {
			t.Errorf("notification %q from pid %d, not the server's %d", msg, pid, s.PID())
		}
		if strings.Contains(msg, "READY=1") && pid == s.PID() && !ready {
			ready, deadline = true, time.Now().Add(3*time.Second)
		}
	}
}

func senderPID(t *testing.T, oob []byte) int {
	t.Helper()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v: %v", msgs, err)
	}
	cred, err := unix.ParseUnixCredentials(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	return int(cred.Pid)
}

// TestServerSaysWhyItsAPIServerDied holds the port the stand-in gives its
// kube-apiserver: the server must fail with the API server's own reason,
// which k3stest needs to try again on other ports.
func TestServerSaysWhyItsAPIServerDied(t *testing.T) {
	needK3s(t)
	port, err := k3stest.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	out, err := k3sCommand(t, "server", "--data-dir", t.TempDir(), "--https-listen-port", strconv.Itoa(port))
	if err == nil || !strings.Contains(out, "kube-apiserver exited before ready") || !strings.Contains(out, "address already in use") {
		t.Fatalf("server with its API port taken: %v\n%s", err, out)
	}
}
