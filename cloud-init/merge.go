package cloudinit

import "gopkg.in/yaml.v3"

// Config is a device's resolved configuration: every source merged and
// validated.
type Config struct {
	UserData UserData
	MetaData MetaData
	// Network is nil when no source gave a network-config; the agent then
	// runs DHCP on every wired interface.
	Network *NetworkConfig
}

// Hostname is the host name the device takes: user-data's hostname, else
// meta-data's local-hostname, else "".
func (c *Config) Hostname() string {
	if c.UserData.Hostname != "" {
		return c.UserData.Hostname
	}
	return c.MetaData.LocalHostname
}

// Resolve merges seeds given in increasing priority (image defaults, then
// the CIDATA volume, then the network seed) and validates the result.
//
// user-data and meta-data merge key by key: a mapping in a later seed merges
// into the same mapping of an earlier one, any other value (a string, a list)
// replaces it whole. network-config does not merge: the last seed that has one
// gives all of it, because half of one interface plan and half of another
// is never what anyone meant. Errors name the seed file each value came from.
func Resolve(seeds ...Seed) (*Config, error) {
	cfg := &Config{}
	var errs ValidationErrors
	ud, udFiles := mergeSeeds(seeds, "user-data", func(s Seed) []byte { return s.UserData }, userDataNode, &errs)
	if ud != nil {
		d := newDecoder("user-data")
		d.files = udFiles
		d.decodeUserData(ud, &cfg.UserData)
		errs = append(errs, d.errs...)
	}
	md, mdFiles := mergeSeeds(seeds, "meta-data", func(s Seed) []byte { return s.MetaData }, parseYAML, &errs)
	if md != nil {
		d := newDecoder("meta-data")
		d.files = mdFiles
		d.decodeMetaData(md, &cfg.MetaData)
		errs = append(errs, d.errs...)
	} else if len(errs) == 0 {
		errs = append(errs, ValidationError{File: "meta-data", Line: 1, Column: 1, Message: "no source gave meta-data with an instance-id"})
	}
	for i := len(seeds) - 1; i >= 0; i-- {
		if seeds[i].NetworkConfig == nil {
			continue
		}
		nc, err := ParseNetworkConfig(seeds[i].file("network-config"), seeds[i].NetworkConfig)
		if ve, ok := err.(ValidationErrors); ok {
			errs = append(errs, ve...)
		}
		cfg.Network = nc
		break
	}
	return cfg, errs.asError()
}

// mergeSeeds parses one file from every seed and merges the documents in
// order, remembering for each node the seed file it came from.
func mergeSeeds(seeds []Seed, name string, pick func(Seed) []byte,
	parse func(string, []byte) (*yaml.Node, ValidationErrors), errs *ValidationErrors) (*yaml.Node, map[*yaml.Node]string) {
	var merged *yaml.Node
	files := map[*yaml.Node]string{}
	for _, s := range seeds {
		data := pick(s)
		if data == nil {
			continue
		}
		file := s.file(name)
		doc, perrs := parse(file, data)
		if perrs != nil {
			*errs = append(*errs, perrs...)
			continue
		}
		root := resolve(doc)
		if root == nil || isNull(root) {
			continue
		}
		markFile(root, file, files)
		merged = mergeNode(merged, root, files)
	}
	return merged, files
}

func markFile(n *yaml.Node, file string, files map[*yaml.Node]string) {
	if n == nil {
		return
	}
	if _, seen := files[n]; seen {
		return // an alias points back into the tree
	}
	files[n] = file
	for _, c := range n.Content {
		markFile(c, file, files)
	}
	markFile(n.Alias, file, files)
}

// mergeNode merges src over dst without changing either: mappings merge key
// by key, anything else in src replaces dst.
func mergeNode(dst, src *yaml.Node, files map[*yaml.Node]string) *yaml.Node {
	dst, src = resolve(dst), resolve(src)
	if dst == nil || dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return src
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: dst.Tag, Line: dst.Line, Column: dst.Column}
	files[out] = files[dst]
	index := map[string]int{}
	for i := 0; i+1 < len(dst.Content); i += 2 {
		index[dst.Content[i].Value] = len(out.Content)
		out.Content = append(out.Content, dst.Content[i], dst.Content[i+1])
	}
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		if j, ok := index[k.Value]; ok {
			out.Content[j] = k
			out.Content[j+1] = mergeNode(out.Content[j+1], v, files)
			delete(index, k.Value) // a second k in src stays a duplicate the decoder reports
			continue
		}
		out.Content = append(out.Content, k, v)
	}
	return out
}
