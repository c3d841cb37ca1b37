package k3s

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// bootScript makes the new mount namespace look like a booted system to
// systemd, and keeps that systemd away from the host it shares a kernel
// and file systems with: a private /run, the unit and generator
// directories hidden (else sysinit.target would pull in tmpfiles, which
// empties the shared /tmp, sysctl, sysusers and the rest), stub targets for
// the dependencies of a service, and /etc and /var read-only.
const bootScript = `set -e
mount -t tmpfs tmpfs /run
for d in /usr/lib/systemd/system /usr/lib/systemd/system-generators /etc/systemd/system /etc/systemd/system-generators /usr/local/lib/systemd/system; do
	if [ -d "$d" ]; then mount -t tmpfs -o ro tmpfs "$d"; fi
done
for d in /etc /var; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
mkdir -p /run/systemd/system
for t in cairn-test sysinit basic network-online shutdown; do
	printf '[Unit]\nDescription=stub for a test\nDefaultDependencies=no\n' > /run/systemd/system/$t.target
done
export container=cairn-test
exec %s --system --unit=cairn-test.target --log-target=null
`

// startSystemd boots a real systemd as PID 1 of new PID and mount
// namespaces (as a container manager would) and returns its host pid. Its
// files are reached from here through /proc/PID/root.
func startSystemd(t *testing.T) int {
	t.Helper()
	if testing.Short() {
		t.Skip("boots systemd in a PID namespace")
	}
	if os.Geteuid() != 0 {
		t.Fatal("booting systemd in a namespace needs root")
	}
	bin := "/lib/systemd/systemd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("systemd not installed: %v", err)
	}
	before := cgroupDirs()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc", "--uts", "--ipc",
		"/bin/sh", "-c", fmt.Sprintf(bootScript, bin))
	out, _ := os.Create(filepath.Join(t.TempDir(), "systemd.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	var pid int
	t.Cleanup(func() {
		if pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL) // ends the whole PID namespace
		}
		cmd.Wait()
		out.Close()
		removeNewCgroups(before)
	})
	waitFor(t, "systemd's private bus", func() bool {
		if pid == 0 {
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			pid, _ = strconv.Atoi(strings.TrimSpace(string(kids)))
			return false
		}
		// The socket shows up before systemd serves it.
		_, err := systemdAgent(t, pid, "ping")
		return err == nil
	})
	return pid
}

// cgroupDirs lists the top-level cgroups; systemd adds its slices there.
func cgroupDirs() map[string]bool {
	m := map[string]bool{}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/*")
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			m[d] = true
		}
	}
	return m
}

// removeNewCgroups removes the cgroups the test's systemd made, once the
// killed processes in them are gone.
func removeNewCgroups(before map[string]bool) {
	for d := range cgroupDirs() {
		if before[d] {
			continue
		}
		var all []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			for try := 0; try < 500 && os.Remove(all[i]) != nil; try++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

const capSysResource = 24

// hasCapability reads this process's effective capabilities.
func hasCapability(bit uint) bool {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps&(1<<bit) != 0
		}
	}
	return false
}

// systemdAgent runs this test binary as a short-lived cairn-agent inside
// systemd's namespaces (systemd refuses D-Bus peers from outside its PID
// namespace) and returns what it printed for each operation.
func systemdAgent(t *testing.T, sd int, ops ...string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(sd), "-p", "-m", "--", exe}, ops...)...)
	cmd.Env = append(os.Environ(), "CAIRN_K3S_TEST_ROLE=systemd-agent")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

// runSystemdAgent is the agent side of systemdAgent: it drives a
// SystemdRunner with the defaults a device uses.
func runSystemdAgent(ops []string) {
	ctx := context.Background()
	cmd := doubleCommand("k3s-double")
	cmd.Args = []string{"server", "--config", "/etc/rancher/k3s/config.yaml"}
	cmd.Env = append(cmd.Env, "CAIRN_K3S_TEST_SHIM_PIDFILE="+os.Getenv("CAIRN_K3S_TEST_SHIM_PIDFILE"),
		"CAIRN_K3S_TEST_NEVER_READY="+os.Getenv("CAIRN_K3S_TEST_NEVER_READY"))
	r := NewSystemdRunner(cmd, "k3s.service", DefaultUnitDir)
	r.StartWait = 2 * time.Second
	for _, op := range ops {
		var err error
		var out any
		switch op {
		case "ping":
			var c *sddbus.Conn
			if c, err = r.Connect(ctx); err == nil {
				out, err = c.GetManagerProperty("Version")
				c.Close()
			}
		case "start":
			err = r.Start(ctx)
		case "stop":
			err = r.Stop(ctx)
		case "restart":
			err = r.Restart(ctx)
		case "status":
			out, err = r.Status(ctx)
		case "props":
			var c *sddbus.Conn
			if c, err = r.Connect(ctx); err == nil {
				var p map[string]any
				p, err = c.GetUnitTypePropertiesContext(ctx, "k3s.service", "Service")
				out = map[string]any{"Delegate": p["Delegate"], "KillMode": p["KillMode"], "TasksMax": p["TasksMax"],
					"LimitNOFILE": p["LimitNOFILE"], "LimitNPROC": p["LimitNPROC"]}
				c.Close()
			}
		}
		if err != nil {
			fmt.Println(op, "error:", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	}
	os.Exit(0)
}

func TestSystemdRunnerAgainstRealSystemd(t *testing.T) {
	sd := startSystemd(t)
	nsProc := func(pid int, file string) string { return fmt.Sprintf("/proc/%d/root/proc/%d/%s", sd, pid, file) }
	shimFile := filepath.Join(t.TempDir(), "shim.pid")
	t.Setenv("CAIRN_K3S_TEST_SHIM_PIDFILE", shimFile)
	agent := func(ops ...string) []string {
		t.Helper()
		out, err := systemdAgent(t, sd, ops...)
		if err != nil {
			t.Fatalf("agent %v: %v", ops, err)
		}
		return out
	}
	status := func(line string) Status {
		t.Helper()
		var st Status
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatalf("status %q: %v", line, err)
		}
		return st
	}
	st := status(agent("start", "status")[1])
	if !st.Running || st.PID == 0 {
		t.Fatalf("after Start: %+v", st)
	}
	unit, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s/k3s.service", sd, DefaultUnitDir))
	if err != nil || !strings.Contains(string(unit), "KillMode=process") {
		t.Fatalf("unit file: %v\n%s", err, unit)
	}

	// systemd took the limits and cgroup settings of k3s's own unit...
	var props map[string]any
	json.Unmarshal([]byte(agent("props")[0]), &props)
	const infinity = float64(1<<64 - 1)
	if props["Delegate"] != true || props["KillMode"] != "process" || props["TasksMax"] != infinity ||
		props["LimitNOFILE"] != float64(1048576) || props["LimitNPROC"] != infinity {
		t.Errorf("service properties %v; want Delegate true, KillMode process, TasksMax, LimitNPROC infinity, LimitNOFILE 1048576", props)
	}
	// ...and they reach the process, where systemd may raise hard limits.
	limits, err := os.ReadFile(nsProc(st.PID, "limits"))
	if err != nil {
		t.Fatal(err)
	}
	if hasCapability(capSysResource) {
		for _, re := range []string{`Max open files\s+1048576\s+1048576`, `Max processes\s+unlimited\s+unlimited`} {
			if !regexp.MustCompile(re).Match(limits) {
				t.Errorf("k3s limits lack %s:\n%s", re, limits)
			}
		}
	} else {
		t.Log("no CAP_SYS_RESOURCE here: systemd cannot raise hard limits, so the process limits are not checked")
	}

	// A new agent process finds k3s running and leaves it be.
	if st2 := status(agent("start", "status")[1]); st2.PID != st.PID || !st2.Running {
		t.Fatalf("agent restart: %+v, want k3s pid %d untouched", st2, st.PID)
	}

	st3 := status(agent("restart", "status")[1])
	if !st3.Running || st3.PID == st.PID {
		t.Fatalf("Restart: %+v, old pid %d", st3, st.PID)
	}
	if st4 := status(agent("stop", "status")[1]); st4.Running {
		t.Fatalf("after Stop: %+v", st4)
	}
	// KillMode=process: what k3s started (its containers) outlives it.
	shim, err := os.ReadFile(shimFile)
	if err != nil {
		t.Fatal(err)
	}
	shimPID, _ := strconv.Atoi(string(shim))
	if _, err := os.Stat(nsProc(shimPID, "stat")); err != nil {
		t.Fatalf("k3s's child %d died with k3s: %v", shimPID, err)
	}

	// A k3s that never reports ready must not hold up the agent's boot:
	// Start returns after StartWait with the job still running in systemd,
	// and Status says it is not up.
	t.Setenv("CAIRN_K3S_TEST_NEVER_READY", "1")
	if st5 := status(agent("start", "status")[1]); st5.Running {
		t.Fatalf("a k3s that never notified counts as running: %+v", st5)
	}
}

func TestRenderUnitQuotesArguments(t *testing.T) {
	u := string(RenderUnit(Command{Path: "/var/lib/cairn/k3s/k3s", Args: []string{"server", "--node-name", "box 7", "50%", "$HOME"}}))
	if !strings.Contains(u, `ExecStart=/var/lib/cairn/k3s/k3s server --node-name "box 7" 50%% $$HOME`+"\n") {
		t.Fatalf("ExecStart not quoted for systemd:\n%s", u)
	}
}
