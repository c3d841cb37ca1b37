package cloudinit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// schemaer is implemented by value types that describe their own JSON Schema.
type schemaer interface {
	jsonSchema() map[string]any
}

// Schema returns the JSON Schema (draft 2020-12) of a configuration file, for
// editors: kind is "user-data", "network-config" or "meta-data". It is
// generated from the same Go types and tags the parser decodes with, so the
// two cannot drift apart.
func Schema(kind string) ([]byte, error) {
	var t reflect.Type
	switch kind {
	case "user-data":
		t = reflect.TypeFor[UserData]()
	case "network-config":
		t = reflect.TypeFor[NetworkConfig]()
	case "meta-data":
		t = reflect.TypeFor[MetaData]()
	default:
		return nil, fmt.Errorf("schema %q: want user-data, network-config or meta-data", kind)
	}
	s := schemaOf(t, rules{})
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["title"] = "Cairn " + kind
	return json.MarshalIndent(s, "", "  ")
}

func schemaOf(t reflect.Type, r rules) map[string]any {
	if sc, ok := reflect.New(t).Interface().(schemaer); ok {
		return sc.jsonSchema()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), r)
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range fieldsOf(t) {
			p := schemaOf(t.FieldByIndex(f.index).Type, f.rules)
			if f.doc != "" {
				p["description"] = f.doc
			}
			props[f.key] = p
			if f.rules.required {
				required = append(required, f.key)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), r)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), rules{})}
	case reflect.String:
		s := map[string]any{"type": "string"}
		if len(r.enum) > 0 {
			s["enum"] = r.enum
		}
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		s := map[string]any{"type": "integer"}
		if r.min != nil {
			s["minimum"] = *r.min
		}
		if r.max != nil {
			s["maximum"] = *r.max
		}
		return s
	}
	panic("cloudinit: no schema for " + t.String() + " " + strconv.Itoa(int(t.Kind())))
}

// Keys lists every key path the schema of kind knows, like
// "cairn.k3s.role"; map and list levels appear as "[]". Docs and tests use it
// to check that every key is documented.
func Keys(kind string) []string {
	var t reflect.Type
	switch kind {
	case "user-data":
		t = reflect.TypeFor[UserData]()
	case "network-config":
		t = reflect.TypeFor[NetworkConfig]()
	case "meta-data":
		t = reflect.TypeFor[MetaData]()
	}
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		if _, ok := reflect.New(t).Interface().(schemaer); ok {
			return
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(t.Elem(), prefix)
		case reflect.Map:
			walk(t.Elem(), prefix+"[]")
		case reflect.Struct:
			for _, f := range fieldsOf(t) {
				k := join(prefix, f.key)
				keys = append(keys, k)
				walk(t.FieldByIndex(f.index).Type, k)
			}
		}
	}
	if t != nil {
		walk(t, "")
	}
	return keys
}
