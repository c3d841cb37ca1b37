// Command kube-apiserver is the real Kubernetes API server built from the
// k8s.io/kubernetes module, with an optional embedded etcd, so tests can run
// the k3s stand-in against the API server k3s itself embeds.
//
// Flags starting with --cairn- are consumed here; everything else goes to the
// API server unchanged:
//
//	--cairn-etcd-dir=DIR          start an embedded etcd with its data in DIR
//	--cairn-etcd-client-url=URL   its client URL (default http://127.0.0.1:2379)
//	--cairn-etcd-peer-url=URL     its peer URL (default http://127.0.0.1:2380)
//
// With --cairn-etcd-dir the API server's --etcd-servers is set to the client
// URL. The subcommand
//
//	kube-apiserver cairn-etcd-snapshot --endpoint=URL --file=PATH
//
// streams a snapshot of a running etcd into PATH (temp file, fsync, rename).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	_ "time/tzdata" // for time zone support in CronJob

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "cairn-etcd-snapshot" {
		if err := snapshotCommand(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "cairn-etcd-snapshot:", err)
			os.Exit(1)
		}
		return
	}
	own, rest := splitArgs(os.Args[1:])
	if dir := own["etcd-dir"]; dir != "" {
		clientURL := valueOr(own["etcd-client-url"], "http://127.0.0.1:2379")
		peerURL := valueOr(own["etcd-peer-url"], "http://127.0.0.1:2380")
		stop, err := startEtcd(dir, clientURL, peerURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, "embedded etcd:", err)
			os.Exit(1)
		}
		defer stop()
		rest = append(rest, "--etcd-servers="+clientURL)
	}
	command := app.NewAPIServerCommand()
	command.SetArgs(rest)
	code := cli.Run(command)
	os.Exit(code)
}

// splitArgs separates --cairn-NAME=VALUE flags from the API server's own.
func splitArgs(args []string) (map[string]string, []string) {
	own := map[string]string{}
	var rest []string
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--cairn-"); ok {
			k, v, _ := strings.Cut(name, "=")
			own[k] = v
			continue
		}
		rest = append(rest, a)
	}
	return own, rest
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func startEtcd(dir, clientURL, peerURL string) (func(), error) {
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("client url %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("peer url %q: %w", peerURL, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "default"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(2 * time.Minute):
		e.Close()
		return nil, fmt.Errorf("%s: not ready after 2m", dir)
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return e.Close, nil
}

func snapshotCommand(args []string) error {
	fs := flag.NewFlagSet("cairn-etcd-snapshot", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "http://127.0.0.1:2379", "etcd client URL")
	file := fs.String("file", "", "snapshot file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--file is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("connect %s: %w", *endpoint, err)
	}
	defer c.Close()
	rc, err := c.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", *endpoint, err)
	}
	defer rc.Close()
	return writeAtomic(*file, rc)
}

func writeAtomic(path string, r io.Reader) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".snapshot-*")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("snapshot %s: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("snapshot %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer d.Close()
	return d.Sync()
}
