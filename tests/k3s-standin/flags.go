package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

const defaultConfigFile = "/etc/rancher/k3s/config.yaml"

// config is the part of k3s's command line the stand-in acts on; every other
// k3s flag is accepted and ignored.
type config struct {
	mode             string
	configFile       string
	dataDir          string
	token            string
	tokenFile        string
	serverURL        string
	httpsPort        int
	bindAddress      string
	advertiseAddress string
	tlsSANs          []string
	writeKubeconfig  string
	kubeconfigMode   string
	clusterInit      bool
	nodeName         string
	withNodeID       bool
	nodeLabels       []string
	nodeTaints       []string
	nodeIP           []string
	kubeletArgs      []string
	apiserverArgs    []string
}

// Flags k3s has that the stand-in accepts and ignores, by kind.
var (
	commonIgnoredStrings = []string{"log", "vmodule", "image-credential-provider-bin-dir",
		"image-credential-provider-config", "container-runtime-endpoint", "default-runtime",
		"image-service-endpoint", "pause-image", "snapshotter", "private-registry", "resolv-conf",
		"flannel-iface", "flannel-conf", "flannel-cni-conf", "vpn-auth", "vpn-auth-file",
		"lb-server-port", "system-default-registry"}
	commonIgnoredBools = []string{"debug", "alsologtostderr", "docker", "disable-default-registry-endpoint",
		"protect-kernel-defaults", "rootless", "prefer-bundled-bin", "selinux", "enable-pprof"}
	commonIgnoredSlices = []string{"node-external-ip", "node-internal-dns", "node-external-dns",
		"kube-proxy-arg", "airgap-extra-registry", "nonroot-devices"}
	serverIgnoredStrings = []string{"cluster-cidr", "service-cidr", "service-node-port-range",
		"cluster-dns", "cluster-domain", "flannel-backend", "egress-selector-mode", "servicelb-namespace",
		"write-kubeconfig-group", "helm-job-image", "agent-token", "agent-token-file",
		"cluster-reset-restore-path", "datastore-endpoint", "datastore-cafile", "datastore-certfile",
		"datastore-keyfile", "etcd-snapshot-name", "etcd-snapshot-schedule-cron", "etcd-snapshot-dir",
		"etcd-s3-endpoint", "etcd-s3-endpoint-ca", "etcd-s3-access-key", "etcd-s3-secret-key",
		"etcd-s3-bucket", "etcd-s3-region", "etcd-s3-folder", "etcd-s3-config-secret",
		"etcd-s3-proxy", "etcd-s3-timeout", "default-local-storage-path", "tls-san-security-mode",
		"kine-tls", "supervisor-port", "apiserver-port", "apiserver-bind-address"}
	serverIgnoredBools = []string{"flannel-ipv6-masq", "flannel-external-ip", "cluster-reset",
		"etcd-expose-metrics", "etcd-disable-snapshots", "etcd-snapshot-compress", "etcd-s3",
		"etcd-s3-skip-ssl-verify", "etcd-s3-insecure", "disable-scheduler", "disable-cloud-controller",
		"disable-kube-proxy", "disable-network-policy", "disable-helm-controller", "embedded-registry",
		"supervisor-metrics", "secrets-encryption", "disable-apiserver", "disable-controller-manager",
		"disable-etcd", "tls-san-security"}
	serverIgnoredSlices = []string{"disable", "etcd-arg", "kube-controller-manager-arg",
		"kube-scheduler-arg", "kube-cloud-controller-manager-arg", "etcd-s3-retention"}
	serverIgnoredInts = []string{"etcd-snapshot-retention", "advertise-port"}
)

// newFlagSet declares k3s's flags for mode ("server" or "agent").
func newFlagSet(mode string, c *config) *pflag.FlagSet {
	fs := pflag.NewFlagSet("k3s "+mode, pflag.ContinueOnError)
	fs.StringVarP(&c.configFile, "config", "c", defaultConfigFile, "config file")
	fs.StringVarP(&c.dataDir, "data-dir", "d", "/var/lib/rancher/k3s", "data directory")
	fs.StringVarP(&c.token, "token", "t", "", "shared secret")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the token")
	fs.StringVarP(&c.serverURL, "server", "s", "", "server to connect to")
	fs.StringVar(&c.nodeName, "node-name", "", "node name")
	fs.BoolVar(&c.withNodeID, "with-node-id", false, "append an id to the node name")
	fs.StringArrayVar(&c.nodeLabels, "node-label", nil, "key=value")
	fs.StringArrayVar(&c.nodeTaints, "node-taint", nil, "key=value:Effect")
	fs.StringArrayVarP(&c.nodeIP, "node-ip", "i", nil, "node address")
	fs.StringArrayVar(&c.kubeletArgs, "kubelet-arg", nil, "kubelet flag")
	fs.StringVar(&c.bindAddress, "bind-address", "", "bind address")
	fs.IntP("v", "", 0, "log level")
	declareIgnored(fs, commonIgnoredStrings, commonIgnoredBools, commonIgnoredSlices, nil)
	if mode == "server" {
		fs.IntVar(&c.httpsPort, "https-listen-port", 6443, "supervisor and apiserver port")
		fs.StringVar(&c.advertiseAddress, "advertise-address", "", "advertised apiserver address")
		fs.StringArrayVar(&c.tlsSANs, "tls-san", nil, "extra serving certificate names")
		fs.StringVarP(&c.writeKubeconfig, "write-kubeconfig", "o", "/etc/rancher/k3s/k3s.yaml", "admin kubeconfig path")
		fs.StringVar(&c.kubeconfigMode, "write-kubeconfig-mode", "", "admin kubeconfig mode")
		fs.BoolVar(&c.clusterInit, "cluster-init", false, "embedded etcd")
		fs.StringArrayVar(&c.apiserverArgs, "kube-apiserver-arg", nil, "kube-apiserver flag")
		declareIgnored(fs, serverIgnoredStrings, serverIgnoredBools, serverIgnoredSlices, serverIgnoredInts)
	}
	return fs
}

func declareIgnored(fs *pflag.FlagSet, strs, bools, slices, ints []string) {
	for _, n := range strs {
		fs.String(n, "", "accepted, ignored by the stand-in")
	}
	for _, n := range bools {
		fs.Bool(n, false, "accepted, ignored by the stand-in")
	}
	for _, n := range slices {
		fs.StringArray(n, nil, "accepted, ignored by the stand-in")
	}
	for _, n := range ints {
		fs.Int(n, 0, "accepted, ignored by the stand-in")
	}
}

// parseCommand parses a k3s server or agent command line the way k3s does:
// the config file (and its .d drop-ins) first, then the command line, with
// environment variables K3S_TOKEN, K3S_URL and K3S_NODE_NAME as defaults.
// Unknown command-line flags are errors; unknown config keys are skipped
// with a warning.
func parseCommand(mode string, args []string, stderr io.Writer) (*config, error) {
	c := &config{mode: mode}
	fs := newFlagSet(mode, c)
	fs.SetOutput(io.Discard)
	path, explicit := configPath(args)
	fileArgs, err := configFileArgs(fs, path, explicit, stderr)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(append(fileArgs, args...)); err != nil {
		return nil, fmt.Errorf("incorrect usage: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("incorrect usage: unexpected argument %q", fs.Arg(0))
	}
	envDefault(&c.token, "K3S_TOKEN")
	envDefault(&c.serverURL, "K3S_URL")
	envDefault(&c.nodeName, "K3S_NODE_NAME")
	if c.token == "" && c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	if mode == "agent" && (c.serverURL == "" || c.token == "") {
		return nil, errors.New("--server and --token are required for agent")
	}
	return c, nil
}

func envDefault(v *string, name string) {
	if *v == "" {
		*v = os.Getenv(name)
	}
}

// configPath finds --config/-c on the command line before the full parse,
// since the file's keys come first.
func configPath(args []string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--config=", "-c="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v, true
			}
		}
		if (a == "--config" || a == "-c") && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := os.Getenv("K3S_CONFIG_FILE"); v != "" {
		return v, true
	}
	return defaultConfigFile, false
}

// configFileArgs turns the config file and its drop-ins into flags. A missing
// default file is fine; a missing explicit one is an error.
func configFileArgs(fs *pflag.FlagSet, path string, explicit bool, stderr io.Writer) ([]string, error) {
	files := []string{path}
	dropins, _ := filepath.Glob(path + ".d/*.yaml")
	sort.Strings(dropins)
	files = append(files, dropins...)
	var out []string
	for i, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && i == 0 && !explicit {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", f, err)
		}
		args, err := yamlArgs(fs, f, b, stderr)
		if err != nil {
			return nil, err
		}
		out = append(out, args...)
	}
	return out, nil
}

func yamlArgs(fs *pflag.FlagSet, file string, b []byte, stderr io.Writer) ([]string, error) {
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		name := strings.TrimSuffix(k, "+")
		if name == "config" || fs.Lookup(name) == nil {
			fmt.Fprintf(stderr, "level=warning msg=\"Unknown flag --%s found in config file %s, skipping\"\n", name, file)
			continue
		}
		switch v := m[k].(type) {
		case []any:
			for _, e := range v {
				out = append(out, fmt.Sprintf("--%s=%v", name, e))
			}
		case map[string]any:
			return nil, fmt.Errorf("config file %s: key %s: a map is not a flag value", file, k)
		default:
			out = append(out, fmt.Sprintf("--%s=%v", name, v))
		}
	}
	return out, nil
}

// kubeletArg returns the value of a --kubelet-arg=name=value, or def.
func (c *config) kubeletArg(name, def string) string {
	v := def
	for _, a := range c.kubeletArgs {
		k, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if k == name {
			v = val
		}
	}
	return v
}
