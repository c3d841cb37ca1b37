package k3s

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// repeatableFlags are the k3s flags that take a list (cli.StringSliceFlag in
// k3s): in config.yaml they are YAML sequences, and giving one twice in
// extra_args appends rather than conflicts.
var repeatableFlags = map[string]bool{
	"tls-san": true, "node-label": true, "node-taint": true,
	"node-ip": true, "node-external-ip": true,
	"node-internal-dns": true, "node-external-dns": true,
	"kubelet-arg": true, "kube-proxy-arg": true, "kube-apiserver-arg": true,
	"kube-scheduler-arg": true, "kube-controller-manager-arg": true,
	"kube-cloud-controller-manager-arg": true, "etcd-arg": true,
	"disable": true, "cluster-cidr": true, "service-cidr": true,
	"cluster-dns": true,
}

// ownedFlags are written from the typed fields of a Spec; extra_args may not
// set them, so that there is one place to read the node's role and secrets.
var ownedFlags = map[string]string{
	"server": "server", "token": "token", "token-file": "token or token_file",
	"cluster-init": "cluster_init", "config": "(the agent renders it)",
	"private-registry": "registries", "agent-token": "token",
	"agent-token-file": "token or token_file",
}

// entry is one key of config.yaml; value is a string, a bool or a []string.
type entry struct {
	key   string
	value any
}

// renderConfig writes config.yaml: Cairn's keys first, in a fixed order, then
// the extra arguments in the order given, lists merged.
func renderConfig(s Spec, labels []string, p Paths) ([]byte, error) {
	var es []entry
	add := func(k string, v any) { es = append(es, entry{k, v}) }
	if s.ClusterInit {
		add("cluster-init", true)
	}
	if s.Server != "" {
		add("server", s.Server)
	}
	switch {
	case s.Token != "":
		add("token-file", p.Token)
	case s.TokenFile != "":
		add("token-file", s.TokenFile)
	}
	if !s.Registries.empty() {
		add("private-registry", p.Registries)
	}
	if len(labels) > 0 {
		add("node-label", labels)
	}
	if len(s.NodeTaints) > 0 {
		add("node-taint", append([]string(nil), s.NodeTaints...))
	}
	es, err := mergeExtraArgs(es, s.ExtraArgs)
	if err != nil {
		return nil, err
	}
	return marshalEntries(es)
}

// mergeExtraArgs parses --flag=value arguments into entries. A flag without
// a value is a boolean switch.
func mergeExtraArgs(es []entry, args []string) ([]entry, error) {
	index := map[string]int{}
	for i, e := range es {
		index[e.key] = i
	}
	for i, a := range args {
		key, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		where := fmt.Sprintf("extra_args[%d]", i)
		switch {
		case !strings.HasPrefix(a, "--") || key == "" || strings.ContainsAny(key, " \t="):
			return nil, fmt.Errorf("%w: %s: %q is not a flag (--name=value)", ErrInvalidSpec, where, a)
		case ownedFlags[key] != "":
			return nil, fmt.Errorf("%w: %s: --%s is set through %s", ErrInvalidSpec, where, key, ownedFlags[key])
		}
		if repeatableFlags[key] {
			if !hasValue {
				return nil, fmt.Errorf("%w: %s: --%s needs a value", ErrInvalidSpec, where, key)
			}
			if j, ok := index[key]; ok {
				es[j].value = append(es[j].value.([]string), value)
				continue
			}
			index[key] = len(es)
			es = append(es, entry{key, []string{value}})
			continue
		}
		if _, dup := index[key]; dup {
			return nil, fmt.Errorf("%w: %s: --%s given twice and it takes one value", ErrInvalidSpec, where, key)
		}
		var v any = value
		switch {
		case !hasValue || value == "true":
			v = true
		case value == "false":
			v = false
		}
		index[key] = len(es)
		es = append(es, entry{key, v})
	}
	return es, nil
}

func marshalEntries(es []entry) ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, e := range es {
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: e.key}
		v := &yaml.Node{}
		if err := v.Encode(e.value); err != nil {
			return nil, fmt.Errorf("k3s config: key %s: %w", e.key, err)
		}
		root.Content = append(root.Content, k, v)
	}
	var b bytes.Buffer
	b.WriteString("# Written by cairn-agent from the device config; edits are overwritten.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("k3s config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("k3s config: %w", err)
	}
	return b.Bytes(), nil
}
