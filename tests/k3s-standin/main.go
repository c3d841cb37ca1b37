// Command k3s is a test double for k3s: it accepts k3s's command line and
// config file, serves the supervisor and kubelet health endpoints, and backs
// them with a real kube-apiserver (built from k8s.io/kubernetes, with an
// embedded etcd) on which it registers its node and keeps it Ready, or
// NotReady on command. README.md describes what it plays and what it does not.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is what `k3s --version` prints; tests that need two releases build
// the stand-in twice with -ldflags "-X main.version=...".
var version = "v1.36.3+k3s1"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "level=fatal msg=%q\n", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command: expected server, agent, etcd-snapshot or --version")
	}
	switch args[0] {
	case "--version", "-v", "version":
		fmt.Fprintf(stdout, "k3s version %s (standin)\ngo version %s\n", version, runtime.Version())
		return nil
	case "server":
		cfg, err := parseCommand("server", args[1:], stderr)
		if err != nil {
			return err
		}
		return runServer(ctx, cfg, stderr)
	case "agent":
		cfg, err := parseCommand("agent", args[1:], stderr)
		if err != nil {
			return err
		}
		return runAgent(ctx, cfg, stderr)
	case "etcd-snapshot":
		return runEtcdSnapshot(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("command %q: not provided by the k3s stand-in", args[0])
	}
}
