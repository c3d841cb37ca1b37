package cloudinit

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The configuration types declare their keys and the rules on their values in
// struct tags, so that decoding, validation and the JSON Schema come from one
// place:
//
//	yaml:"key"                     the key as users write it
//	v:"required,enum=a|b,min=1,max=9"  rules checked while decoding
//	doc:"..."                      the description editors show
//
// Types with a shape of their own (CIDRs, durations, commands) implement
// nodeDecoder and schemaer.

// nodeDecoder is implemented (on the pointer) by types that read themselves
// from a YAML node; the error they return is reported at the node.
type nodeDecoder interface {
	decodeNode(n *yaml.Node) error
}

// rules are the parsed `v` tag of a field.
type rules struct {
	required bool
	enum     []string
	min, max *int64
}

func parseRules(tag string) rules {
	var r rules
	for _, part := range strings.Split(tag, ",") {
		name, val, _ := strings.Cut(part, "=")
		switch name {
		case "required":
			r.required = true
		case "enum":
			r.enum = strings.Split(val, "|")
		case "min", "max":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				panic(fmt.Sprintf("cloudinit: bad rule %q", part)) // a typo in our own tags
			}
			if name == "min" {
				r.min = &n
			} else {
				r.max = &n
			}
		}
	}
	return r
}

// field is one key of a configuration struct.
type field struct {
	key   string
	index []int
	rules rules
	doc   string
}

// fieldsOf lists the keys of a struct type; embedded structs add their keys
// to the outer mapping, as InterfaceConfig does for every interface kind.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fs = append(fs, f)
			}
			continue
		}
		key, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if key == "" || key == "-" || !sf.IsExported() {
			continue
		}
		fs = append(fs, field{key: key, index: []int{i}, rules: parseRules(sf.Tag.Get("v")), doc: sf.Tag.Get("doc")})
	}
	return fs
}

// decoder turns YAML nodes into configuration values, collecting every error
// with its position instead of stopping at the first.
type decoder struct {
	file  string
	files map[*yaml.Node]string // origin of nodes taken from merged documents
	errs  ValidationErrors
	nodes map[string]*yaml.Node // value node of each decoded path, for cross-key checks
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, nodes: map[string]*yaml.Node{}}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	file := d.file
	if f, ok := d.files[n]; ok {
		file = f
	}
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	d.errs = append(d.errs, ValidationError{File: file, Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)})
}

// errorAt reports a problem found after decoding, at the node decoded for path
// (or at fallback when the path was absent).
func (d *decoder) errorAt(path string, fallback *yaml.Node, format string, args ...any) {
	n, ok := d.nodes[path]
	if !ok {
		n = fallback
	}
	d.errorf(n, path, format, args...)
}

func (d *decoder) has(path string) bool { _, ok := d.nodes[path]; return ok }

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return n.Value
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, r rules) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	d.nodes[path] = n
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		if err := nd.decodeNode(n); err != nil {
			d.errorf(n, path, "%s", err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		d.decode(n, v.Elem(), path, r)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path, r)
	case reflect.Map:
		d.decodeMap(n, v, path, r)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
			d.errorf(n, path, "want a string, got %s", kindName(n))
			return
		}
		if len(r.enum) > 0 && !contains(r.enum, n.Value) {
			msg := fmt.Sprintf("%q is not one of %s", n.Value, strings.Join(r.enum, ", "))
			if s := nearest(n.Value, r.enum); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(n, path, "%s", msg)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || (strings.ToLower(n.Value) != "true" && strings.ToLower(n.Value) != "false") {
			d.errorf(n, path, "want true or false, got %s", kindName(n))
			return
		}
		v.SetBool(strings.ToLower(n.Value) == "true")
	case reflect.Int, reflect.Int64, reflect.Int32:
		d.decodeInt(n, v, path, r)
	default:
		panic(fmt.Sprintf("cloudinit: cannot decode into %s", v.Type())) // a type we declared wrongly
	}
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string, r rules) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, path, "want an integer, got %s", kindName(n))
		return
	}
	i, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v.OverflowInt(i) {
		d.errorf(n, path, "integer %s out of range", n.Value)
		return
	}
	if (r.min != nil && i < *r.min) || (r.max != nil && i > *r.max) {
		d.errorf(n, path, "%d is out of range %s", i, rangeText(r))
		return
	}
	v.SetInt(i)
}

func rangeText(r rules) string {
	switch {
	case r.min != nil && r.max != nil:
		return fmt.Sprintf("%d..%d", *r.min, *r.max)
	case r.min != nil:
		return fmt.Sprintf(">= %d", *r.min)
	case r.max != nil:
		return fmt.Sprintf("<= %d", *r.max)
	}
	return "?"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a key, got %s", kindName(k))
			continue
		}
		idx := indexOf(keys, k.Value)
		if idx < 0 {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := nearest(k.Value, keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(k, path, "%s", msg)
			continue
		}
		if seen[k.Value] {
			d.errorf(k, join(path, k.Value), "key given twice")
			continue
		}
		seen[k.Value] = true
		f := fields[idx]
		d.decode(val, v.FieldByIndex(f.index), join(path, f.key), f.rules)
	}
	for _, f := range fields {
		if f.rules.required && !d.has(join(path, f.key)) && !seen[f.key] {
			d.errorf(n, path, "missing required key %q", f.key)
		}
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, r rules) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), rules{enum: r.enum, min: r.min, max: r.max})
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, r rules) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a key, got %s", kindName(k))
			continue
		}
		key := reflect.ValueOf(k.Value).Convert(v.Type().Key())
		if m.MapIndex(key).IsValid() {
			d.errorf(k, fmt.Sprintf("%s[%s]", path, k.Value), "key given twice")
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(n.Content[i+1], elem, fmt.Sprintf("%s[%s]", path, k.Value), rules{})
		m.SetMapIndex(key, elem)
	}
	v.Set(m)
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool { return indexOf(list, s) >= 0 }

// parseYAML parses one document, reporting a syntax error as a ValidationError
// at the position yaml.v3 gives.
func parseYAML(file string, data []byte) (*yaml.Node, ValidationErrors) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, ValidationErrors{syntaxError(file, err)}
	}
	return &doc, nil
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into a located error.
func syntaxError(file string, err error) ValidationError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, after, _ := strings.Cut(rest, ": ")
		if l, err := strconv.Atoi(num); err == nil {
			line, msg = l, after
		}
	}
	return ValidationError{File: file, Line: line, Column: 1, Message: "YAML syntax: " + msg}
}
