package partitions

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"
)

// PartitionTypes maps the type names a layout may use to GPT partition type
// GUIDs. The root types are the Discoverable Partitions Specification's, so
// that tools which know it (systemd-dissect, sgdisk) recognise a Cairn slot.
var PartitionTypes = map[string]string{
	"esp":               "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
	"linux-root-x86-64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
	"linux-root-arm64":  "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
	"linux-generic":     "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
	"basic-data":        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
}

// TypeName is the name PartitionTypes gives a type GUID, or the GUID itself.
func TypeName(typeGUID string) string {
	for name, g := range PartitionTypes {
		if strings.EqualFold(g, typeGUID) {
			return name
		}
	}
	return strings.ToUpper(typeGUID)
}

const (
	maxLabelUTF16 = 36  // a GPT entry holds 72 bytes of UTF-16LE name
	maxPartitions = 128 // entries in the GPT partition array we write
)

var (
	topKeys       = []string{"name", "description", "alignment", "partitions"}
	partitionKeys = []string{"label", "type", "size", "offset", "grow", "optional"}
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): `)
)

type parser struct{ file string }

func (p *parser) errf(n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LayoutError{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ParseLayout reads and validates one layout file; file names it in errors.
// Every error is a *LayoutError with the line and key at fault.
func ParseLayout(file string, data []byte) (*Layout, error) {
	p := &parser{file: file}
	top, err := p.document(data)
	if err != nil {
		return nil, err
	}
	fields, keys, err := p.mappingKeys(top, "", topKeys)
	if err != nil {
		return nil, err
	}
	l, err := p.header(top, fields)
	if err != nil {
		return nil, err
	}
	parts := fields["partitions"]
	if parts.Kind != yaml.SequenceNode {
		return nil, p.errf(keys["partitions"], "partitions", "want a list of partitions")
	}
	if len(parts.Content) > maxPartitions {
		return nil, p.errf(keys["partitions"], "partitions", "%d partitions, a GPT holds %d", len(parts.Content), maxPartitions)
	}
	var nodes []map[string]*yaml.Node
	for i, n := range parts.Content {
		ps, f, err := p.partition(n, fmt.Sprintf("partitions[%d]", i), l.Alignment)
		if err != nil {
			return nil, err
		}
		l.Partitions = append(l.Partitions, ps)
		nodes = append(nodes, f)
	}
	if err := p.check(l, keys["partitions"], nodes); err != nil {
		return nil, err
	}
	return l, nil
}

// document parses the YAML and returns its top node.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		le := &LayoutError{File: p.file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			le.Line, _ = strconv.Atoi(m[1])
			le.Msg = strings.TrimPrefix(err.Error(), m[0])
		}
		return nil, le
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, p.errf(nil, "", "empty file")
	}
	return doc.Content[0], nil
}

// header reads the keys above the partition list.
func (p *parser) header(top *yaml.Node, fields map[string]*yaml.Node) (*Layout, error) {
	for _, k := range []string{"name", "alignment", "partitions"} {
		if fields[k] == nil {
			return nil, p.errf(top, k, "missing")
		}
	}
	l := &Layout{}
	var err error
	if l.Name, err = p.str(fields["name"], "name"); err != nil {
		return nil, err
	}
	if l.Name == "" || strings.ContainsAny(l.Name, "/\\ \t") {
		return nil, p.errf(fields["name"], "name", "%q: want a non-empty name without spaces or slashes", l.Name)
	}
	if n := fields["description"]; n != nil {
		if l.Description, err = p.str(n, "description"); err != nil {
			return nil, err
		}
	}
	if l.Alignment, err = p.size(fields["alignment"], "alignment"); err != nil {
		return nil, err
	}
	if a := l.Alignment; a < SectorSize || a&(a-1) != 0 || a > 1<<30 {
		return nil, p.errf(fields["alignment"], "alignment", "%s: want a power of two from 512 B to 1 GiB", FormatSize(a))
	}
	return l, nil
}

// mapping checks that n is a mapping with only the allowed keys, each once,
// and returns the value nodes by key.
func (p *parser) mapping(n *yaml.Node, key string, allowed []string) (map[string]*yaml.Node, error) {
	fields, _, err := p.mappingKeys(n, key, allowed)
	return fields, err
}

// mappingKeys is mapping that also returns the key nodes, whose lines are
// where an error about a whole value (a list, say) points.
func (p *parser) mappingKeys(n *yaml.Node, key string, allowed []string) (fields, keys map[string]*yaml.Node, err error) {
	what := key
	if what == "" {
		what = "the file"
	}
	if n.Kind != yaml.MappingNode {
		return nil, nil, p.errf(n, key, "want a mapping for %s", what)
	}
	fields, keys = map[string]*yaml.Node{}, map[string]*yaml.Node{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := joinKey(key, k.Value)
		if k.Kind != yaml.ScalarNode || !slices.Contains(allowed, k.Value) {
			return nil, nil, p.errf(k, full, "unknown key (want one of %s)", strings.Join(allowed, ", "))
		}
		if first, dup := keyLines[k.Value]; dup {
			return nil, nil, p.errf(k, full, "repeated (first on line %d)", first)
		}
		if v.Kind == yaml.AliasNode {
			return nil, nil, p.errf(v, full, "YAML aliases are not supported in layouts")
		}
		keyLines[k.Value] = k.Line
		fields[k.Value], keys[k.Value] = v, k
	}
	return fields, keys, nil
}

func (p *parser) partition(n *yaml.Node, key string, align int64) (ps PartitionSpec, f map[string]*yaml.Node, err error) {
	if f, err = p.mapping(n, key, partitionKeys); err != nil {
		return ps, f, err
	}
	for _, k := range []string{"label", "type", "size"} {
		if f[k] == nil {
			return ps, f, p.errf(n, key+"."+k, "missing")
		}
	}
	if ps.Label, err = p.str(f["label"], key+".label"); err != nil {
		return ps, f, err
	}
	if u := len(utf16.Encode([]rune(ps.Label))); u == 0 || u > maxLabelUTF16 {
		return ps, f, p.errf(f["label"], key+".label", "%q is %d UTF-16 code units, a GPT label holds 1 to %d", ps.Label, u, maxLabelUTF16)
	}
	if ps.Type, err = p.str(f["type"], key+".type"); err != nil {
		return ps, f, err
	}
	if g, ok := PartitionTypes[ps.Type]; ok {
		ps.TypeGUID = g
	} else if u, err := uuid.Parse(ps.Type); err == nil && len(ps.Type) == 36 && u != uuid.Nil {
		ps.TypeGUID = strings.ToUpper(u.String())
	} else {
		return ps, f, p.errf(f["type"], key+".type", "%q: want a GUID or one of %s", ps.Type, typeNames())
	}
	for _, k := range []struct {
		name string
		dst  *int64
	}{{"size", &ps.Size}, {"offset", &ps.Offset}} {
		v := f[k.name]
		if v == nil {
			continue
		}
		if *k.dst, err = p.size(v, key+"."+k.name); err != nil {
			return ps, f, err
		}
		if *k.dst%align != 0 {
			return ps, f, p.errf(v, key+"."+k.name, "%s is not a multiple of the alignment %s", FormatSize(*k.dst), FormatSize(align))
		}
	}
	if ps.Size == 0 {
		return ps, f, p.errf(f["size"], key+".size", "must not be zero")
	}
	if v := f["offset"]; v != nil && ps.Offset < firstUsableLBA*SectorSize {
		return ps, f, p.errf(v, key+".offset", "%s lies in the primary GPT, which ends at %d B", FormatSize(ps.Offset), firstUsableLBA*SectorSize)
	}
	if ps.Grow, err = p.boolean(f["grow"], key+".grow"); err != nil {
		return ps, f, err
	}
	ps.Optional, err = p.boolean(f["optional"], key+".optional")
	return ps, f, err
}

func (p *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		return "", p.errf(n, key, "want a string")
	}
	return n.Value, nil
}

func (p *parser) size(n *yaml.Node, key string) (int64, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		return 0, p.errf(n, key, "want a size such as 64MiB")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return 0, p.errf(n, key, "%v", err)
	}
	return v, nil
}

func (p *parser) boolean(n *yaml.Node, key string) (bool, error) {
	if n == nil {
		return false, nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		return false, p.errf(n, key, "%q: want true or false", n.Value)
	}
	return b, nil
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func typeNames() string {
	var names []string
	for n := range PartitionTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
