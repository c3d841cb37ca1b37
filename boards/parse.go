package boards

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-edge/cairn/partitions"
)

var (
	topKeys      = []string{"name", "description", "arch", "bootloader", "console", "cmdline", "layout", "kernel_package", "slot_size", "packages", "components", "initrd_modules", "firmware", "boot_files", "hardware_tested", "encrypt_state"}
	requiredKeys = []string{"name", "arch", "bootloader", "console", "layout", "kernel_package", "slot_size"}
	firmwareKeys = []string{"package", "path", "dest"}
	// rootTypes is the slot partition type each architecture's layout uses.
	rootTypes   = map[string]string{"amd64": "linux-root-x86-64", "arm64": "linux-root-arm64"}
	bootLabels  = map[string]string{UEFIGrub: partitions.LabelEFI, UBoot: partitions.LabelBoot}
	debianName  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	moduleName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	boardName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	bootFileKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	yamlLine    = regexp.MustCompile(`^yaml: line (\d+): `)
)

type parser struct {
	file   string
	fields map[string]*yaml.Node
	keys   map[string]*yaml.Node
}

func (p *parser) errf(n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads and validates one board file; file names it in errors. Every
// error is an *Error with the line and key at fault.
func Parse(file string, data []byte) (*Board, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = strings.TrimPrefix(err.Error(), m[0])
		}
		return nil, e
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, p.errf(nil, "", "empty file")
	}
	top := doc.Content[0]
	var err error
	if p.fields, p.keys, err = p.mapping(top, "", topKeys); err != nil {
		return nil, err
	}
	for _, k := range requiredKeys {
		if p.fields[k] == nil {
			return nil, p.errf(top, k, "missing")
		}
	}
	b := &Board{Components: []string{"main"}}
	for _, s := range []struct {
		key string
		dst *string
	}{{"name", &b.Name}, {"description", &b.Description}, {"arch", &b.Arch}, {"bootloader", &b.Bootloader},
		{"console", &b.Console}, {"cmdline", &b.Cmdline}, {"layout", &b.Layout}, {"kernel_package", &b.KernelPackage}} {
		if n := p.fields[s.key]; n != nil {
			if *s.dst, err = p.str(n, s.key); err != nil {
				return nil, err
			}
		}
	}
	for _, l := range []struct {
		key string
		dst *[]string
		re  *regexp.Regexp
	}{{"packages", &b.Packages, debianName}, {"components", &b.Components, debianName}, {"initrd_modules", &b.InitrdModules, moduleName}} {
		if n := p.fields[l.key]; n != nil {
			if *l.dst, err = p.list(n, l.key, l.re); err != nil {
				return nil, err
			}
		}
	}
	if err := p.scalars(b); err != nil {
		return nil, err
	}
	if err := p.firmware(b); err != nil {
		return nil, err
	}
	if err := p.bootFiles(b); err != nil {
		return nil, err
	}
	return b, p.check(b)
}

// scalars reads and checks the keys with a single non-string value.
func (p *parser) scalars(b *Board) error {
	n := p.fields["slot_size"]
	if n.Kind != yaml.ScalarNode {
		return p.errf(n, "slot_size", "want a size such as 1GiB")
	}
	v, err := partitions.ParseSize(n.Value)
	if err != nil {
		return p.errf(n, "slot_size", "%v", err)
	}
	b.SlotSize = v
	for _, f := range []struct {
		key string
		dst *bool
	}{{"hardware_tested", &b.HardwareTested}, {"encrypt_state", &b.EncryptState}} {
		if n := p.fields[f.key]; n != nil {
			if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(f.dst) != nil {
				return p.errf(n, f.key, "%q: want true or false", n.Value)
			}
		}
	}
	return nil
}

func (p *parser) firmware(b *Board) error {
	n := p.fields["firmware"]
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errf(n, "firmware", "want a list of files")
	}
	dests := map[string]int{}
	for i, item := range n.Content {
		key := fmt.Sprintf("firmware[%d]", i)
		f, _, err := p.mapping(item, key, firmwareKeys)
		if err != nil {
			return err
		}
		var fw Firmware
		for _, s := range []struct {
			key string
			dst *string
		}{{"package", &fw.Package}, {"path", &fw.Path}, {"dest", &fw.Dest}} {
			v := f[s.key]
			if v == nil {
				if s.key == "dest" {
					continue
				}
				return p.errf(item, key+"."+s.key, "missing")
			}
			if *s.dst, err = p.str(v, key+"."+s.key); err != nil {
				return err
			}
		}
		if !debianName.MatchString(fw.Package) {
			return p.errf(f["package"], key+".package", "%q is not a Debian package name", fw.Package)
		}
		if !path.IsAbs(fw.Path) || path.Clean(fw.Path) != fw.Path {
			return p.errf(f["path"], key+".path", "%q: want a clean absolute path", fw.Path)
		}
		if _, err := path.Match(fw.Path, ""); err != nil {
			return p.errf(f["path"], key+".path", "%q: %v", fw.Path, err)
		}
		if fw.Dest != "" {
			if !bootFileKey.MatchString(fw.Dest) {
				return p.errf(f["dest"], key+".dest", "%q: want a file name at the root of the boot partition", fw.Dest)
			}
			if first, dup := dests[fw.Dest]; dup {
				return p.errf(f["dest"], key+".dest", "%s repeated (first on line %d)", fw.Dest, first)
			}
			dests[fw.Dest] = f["dest"].Line
		}
		b.Firmware = append(b.Firmware, fw)
	}
	return nil
}

func (p *parser) bootFiles(b *Board) error {
	n := p.fields["boot_files"]
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n, "boot_files", "want a mapping of file name to contents")
	}
	b.BootFiles = map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := "boot_files." + k.Value
		if !bootFileKey.MatchString(k.Value) {
			return p.errf(k, key, "want a file name at the root of the boot partition")
		}
		if _, dup := b.BootFiles[k.Value]; dup {
			return p.errf(k, key, "repeated")
		}
		for _, fw := range b.Firmware {
			if fw.Dest == k.Value {
				return p.errf(k, key, "also the dest of firmware %s", fw.Path)
			}
		}
		s, err := p.str(v, key)
		if err != nil {
			return err
		}
		b.BootFiles[k.Value] = s
	}
	return nil
}

// check validates the board against its layout and the bootloaders.
func (p *parser) check(b *Board) error {
	if !boardName.MatchString(b.Name) {
		return p.errf(p.fields["name"], "name", "%q: want lower-case letters, digits, '-', '_' or '.'", b.Name)
	}
	rootType, ok := rootTypes[b.Arch]
	if !ok {
		return p.errf(p.fields["arch"], "arch", "%q: want amd64 or arm64", b.Arch)
	}
	bootLabel, ok := bootLabels[b.Bootloader]
	if !ok {
		return p.errf(p.fields["bootloader"], "bootloader", "%q: want %s or %s", b.Bootloader, UEFIGrub, UBoot)
	}
	if b.Console == "" || strings.ContainsAny(b.Console, " '\"\\\n") {
		return p.errf(p.fields["console"], "console", "%q: want one console= value such as ttyS0,115200", b.Console)
	}
	if strings.Contains(b.Cmdline, `"`) || strings.Contains(b.Cmdline, "console=") {
		return p.errf(p.fields["cmdline"], "cmdline", "%q: may not contain double quotes or console= (see console)", b.Cmdline)
	}
	if _, err := partitions.BootCmdline(b.Console, b.Cmdline); err != nil {
		return p.errf(p.fields["cmdline"], "cmdline", "%v", err)
	}
	if !debianName.MatchString(b.KernelPackage) {
		return p.errf(p.fields["kernel_package"], "kernel_package", "%q is not a Debian package name", b.KernelPackage)
	}
	l, err := partitions.LoadLayout(b.Layout)
	if err != nil {
		return p.errf(p.fields["layout"], "layout", "%v", err)
	}
	if _, ok := l.Partition(bootLabel); !ok {
		return p.errf(p.fields["layout"], "layout", "%s has no %s, which a %s board boots from", l.Name, bootLabel, b.Bootloader)
	}
	for _, s := range partitions.Slots {
		ps, _ := l.Partition(s.Label()) // every layout has both slots
		if ps.Type != rootType && !strings.EqualFold(ps.TypeGUID, partitions.PartitionTypes[rootType]) {
			return p.errf(p.fields["layout"], "layout", "%s types %s as %s, an %s board needs %s", l.Name, ps.Label, ps.Type, b.Arch, rootType)
		}
		if ps.Size != b.SlotSize {
			return p.errf(p.fields["slot_size"], "slot_size", "%s: layout %s makes %s %s", partitions.FormatSize(b.SlotSize), l.Name, ps.Label, partitions.FormatSize(ps.Size))
		}
	}
	if b.EncryptState && !slices.Contains(b.InitrdModules, "dm_crypt") {
		return p.errf(p.fields["encrypt_state"], "encrypt_state", "needs dm_crypt in initrd_modules (and xts and ecb, when the kernel has them as modules)")
	}
	if !slices.Contains(b.Components, "main") {
		return p.errf(p.fields["components"], "components", "want main among them")
	}
	return nil
}

func (p *parser) mapping(n *yaml.Node, key string, allowed []string) (fields, keys map[string]*yaml.Node, err error) {
	if n.Kind != yaml.MappingNode {
		what := key
		if what == "" {
			what = "the file"
		}
		return nil, nil, p.errf(n, key, "want a mapping for %s", what)
	}
	fields, keys = map[string]*yaml.Node{}, map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := k.Value
		if key != "" {
			full = key + "." + k.Value
		}
		if k.Kind != yaml.ScalarNode || !slices.Contains(allowed, k.Value) {
			return nil, nil, p.errf(k, full, "unknown key (want one of %s)", strings.Join(allowed, ", "))
		}
		if first := keys[k.Value]; first != nil {
			return nil, nil, p.errf(k, full, "repeated (first on line %d)", first.Line)
		}
		if v.Kind == yaml.AliasNode {
			return nil, nil, p.errf(v, full, "YAML aliases are not supported in board files")
		}
		fields[k.Value], keys[k.Value] = v, k
	}
	return fields, keys, nil
}

func (p *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		return "", p.errf(n, key, "want a string")
	}
	return n.Value, nil
}

func (p *parser) list(n *yaml.Node, key string, re *regexp.Regexp) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, key, "want a list")
	}
	out := []string{}
	for i, item := range n.Content {
		k := fmt.Sprintf("%s[%d]", key, i)
		s, err := p.str(item, k)
		if err != nil {
			return nil, err
		}
		if !re.MatchString(s) {
			return nil, p.errf(item, k, "%q: not a valid name", s)
		}
		if slices.Contains(out, s) {
			return nil, p.errf(item, k, "%s repeated", s)
		}
		out = append(out, s)
	}
	return out, nil
}
