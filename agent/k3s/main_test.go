package k3s

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The test binary doubles as the programs the runner tests need, chosen by
// the environment: a test double standing in for a long-running k3s, one
// that crashes at once, and an agent that starts the double and waits.
func TestMain(m *testing.M) {
	switch os.Getenv("CAIRN_K3S_TEST_ROLE") {
	case "k3s-double":
		runK3sDouble()
	case "k3s-crash":
		os.Exit(3)
	case "agent":
		runTestAgent()
	case "systemd-agent":
		runSystemdAgent(os.Args[1:])
	}
	os.Exit(m.Run())
}

// runK3sDouble stands in for k3s: it runs until SIGTERM, then exits 0.
func runK3sDouble() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	// Like k3s's containerd shims, a process that must outlive k3s.
	if pidfile := os.Getenv("CAIRN_K3S_TEST_SHIM_PIDFILE"); pidfile != "" {
		shim := exec.Command("sleep", "100000")
		if err := shim.Start(); err == nil {
			os.WriteFile(pidfile, []byte(strconv.Itoa(shim.Process.Pid)), 0o644)
		}
	}
	// Under systemd (Type=notify) tell it we are up, as k3s does; a broken
	// k3s never does.
	if os.Getenv("CAIRN_K3S_TEST_NEVER_READY") == "" {
		daemon.SdNotify(false, daemon.SdNotifyReady)
	}
	<-sig
	os.Exit(0)
}

// runTestAgent plays cairn-agent: it starts k3s through a ChildRunner,
// prints the pid and waits to be killed.
func runTestAgent() {
	r := NewChildRunner(doubleCommand("k3s-double"), os.Getenv("CAIRN_K3S_TEST_STATE"), os.Getenv("CAIRN_K3S_TEST_LOG"))
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	st, _ := r.Status(ctx)
	fmt.Println(st.PID)
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// doubleCommand runs this test binary as the given test double.
func doubleCommand(role string) Command {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return Command{Path: exe, Env: []string{"CAIRN_K3S_TEST_ROLE=" + role}}
}
