package k3s

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond; the bound only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func alive(pid int) bool {
	_, ok := procStart(pid)
	return ok
}

func TestChildRunnerK3sSurvivesAgentKillAndIsAdopted(t *testing.T) {
	dir := t.TempDir()
	state, logf := filepath.Join(dir, "k3s.state"), filepath.Join(dir, "k3s.log")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe)
	agent.Env = append(os.Environ(), "CAIRN_K3S_TEST_ROLE=agent", "CAIRN_K3S_TEST_STATE="+state, "CAIRN_K3S_TEST_LOG="+logf)
	stdin, _ := agent.StdinPipe()
	defer stdin.Close()
	out, _ := agent.StdoutPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("test agent: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("test agent said %q", line)
	}
	start, _ := procStart(pid)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

	// The agent dies without any chance to clean up.
	agent.Process.Kill()
	agent.Wait()
	if s, ok := procStart(pid); !ok || s != start {
		t.Fatalf("k3s pid %d did not survive the agent's death", pid)
	}
	if sid, _ := syscall.Getpgid(pid); sid != pid {
		t.Errorf("k3s runs in process group %d, want its own (%d)", sid, pid)
	}

	// The next agent adopts the same process instead of starting another.
	r := NewChildRunner(doubleCommand("k3s-double"), state, logf)
	r.MinBackoff, r.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Status(ctx)
	if !st.Running || st.PID != pid {
		t.Fatalf("after agent restart: %+v, want pid %d adopted", st, pid)
	}

	// An adopted k3s that dies is started again.
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "a new k3s", func() bool {
		st, _ := r.Status(ctx)
		return st.Running && st.PID != pid
	})
	st, _ = r.Status(ctx)
	if st.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st.Restarts)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(st.PID) {
		t.Fatalf("k3s pid %d still runs after Stop", st.PID)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file left after Stop: %v", err)
	}
}

func TestChildRunnerDetachLeavesK3sRunning(t *testing.T) {
	dir := t.TempDir()
	state, logf := filepath.Join(dir, "k3s.state"), filepath.Join(dir, "k3s.log")
	ctx := context.Background()
	r1 := NewChildRunner(doubleCommand("k3s-double"), state, logf)
	if err := r1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st1, _ := r1.Status(ctx)
	r1.Detach()
	if !alive(st1.PID) {
		t.Fatal("Detach stopped k3s")
	}
	r2 := NewChildRunner(doubleCommand("k3s-double"), state, logf)
	if err := r2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st2, _ := r2.Status(ctx)
	if st2.PID != st1.PID {
		t.Fatalf("second runner runs pid %d, want the adopted %d", st2.PID, st1.PID)
	}
	if err := r2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	st3, _ := r2.Status(ctx)
	if !st3.Running || st3.PID == st1.PID || alive(st1.PID) {
		t.Fatalf("Restart: %+v, old pid %d alive=%v", st3, st1.PID, alive(st1.PID))
	}
	if err := r2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestChildRunnerRestartsCrashingK3sWithBackoff(t *testing.T) {
	dir := t.TempDir()
	r := NewChildRunner(doubleCommand("k3s-crash"), filepath.Join(dir, "state"), filepath.Join(dir, "log"))
	r.MinBackoff, r.MaxBackoff = time.Millisecond, 20*time.Millisecond
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three restarts", func() bool {
		st, _ := r.Status(ctx)
		return st.Restarts >= 3
	})
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Status(ctx)
	if st.Running || st.State != "stopped" {
		t.Fatalf("after Stop: %+v", st)
	}
}

func TestChildRunnerIgnoresStaleStateFile(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	// pid 1 runs, but with another start time: not our k3s.
	if err := os.WriteFile(state, []byte(`{"pid":1,"start_time":123456789}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewChildRunner(doubleCommand("k3s-double"), state, filepath.Join(dir, "log"))
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	st, _ := r.Status(ctx)
	if st.PID == 1 || !st.Running {
		t.Fatalf("%+v: adopted a process that is not k3s", st)
	}
}
