package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// runEtcdSnapshot plays `k3s etcd-snapshot save|ls`. Like k3s, it works only
// when the server runs the embedded etcd (--cluster-init).
func runEtcdSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := "save"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := pflag.NewFlagSet("k3s etcd-snapshot "+sub, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.StringP("data-dir", "d", "/var/lib/rancher/k3s", "data directory")
	name := fs.String("name", "on-demand", "snapshot name prefix")
	dir := fs.String("dir", "", "snapshot directory (default DATA_DIR/server/db/snapshots)")
	nodeNameFlag := fs.String("node-name", "", "node name")
	fs.StringP("config", "c", defaultConfigFile, "config file")
	fs.Bool("debug", false, "ignored")
	fs.Bool("etcd-snapshot-compress", false, "ignored")
	// The server's config file supplies data-dir and node-name here too;
	// its other keys are the server's business.
	path, explicit := configPath(args)
	fileArgs, err := configFileArgs(fs, path, explicit, io.Discard)
	if err != nil {
		return err
	}
	if err := fs.Parse(append(fileArgs, args...)); err != nil {
		return fmt.Errorf("incorrect usage: %w", err)
	}
	if *dir == "" {
		*dir = filepath.Join(*dataDir, "server", "db", "snapshots")
	}
	db := filepath.Join(*dataDir, "server", "db")
	if _, err := os.Stat(filepath.Join(db, "etcd")); err != nil {
		return errors.New("etcd datastore disabled")
	}
	switch sub {
	case "save":
		endpoint, err := os.ReadFile(filepath.Join(db, "standin-etcd-endpoint"))
		if err != nil {
			return fmt.Errorf("etcd endpoint: %w", err)
		}
		node := nodeName(&config{nodeName: *nodeNameFlag, dataDir: *dataDir})
		file := filepath.Join(*dir, fmt.Sprintf("%s-%s-%d", *name, node, time.Now().Unix()))
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
		bin, err := apiserverBinary()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, bin, "cairn-etcd-snapshot",
			"--endpoint="+strings.TrimSpace(string(endpoint)), "--file="+file)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("etcd snapshot %s: %w", file, err)
		}
		fmt.Fprintf(stderr, "level=info msg=\"Snapshot %s saved.\"\n", filepath.Base(file))
		return nil
	case "ls", "list":
		entries, err := os.ReadDir(*dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		fmt.Fprintln(stdout, "Name Location Size Created")
		for _, n := range names {
			info, err := os.Stat(filepath.Join(*dir, n))
			if err != nil {
				continue
			}
			fmt.Fprintf(stdout, "%s file://%s %d %s\n", n, filepath.Join(*dir, n), info.Size(), info.ModTime().UTC().Format(time.RFC3339))
		}
		return nil
	default:
		return fmt.Errorf("etcd-snapshot %s: not provided by the k3s stand-in", sub)
	}
}
