package cloudinit

import (
	"reflect"

	"gopkg.in/yaml.v3"
)

// MetaData is the NoCloud meta-data document.
type MetaData struct {
	InstanceID    string `yaml:"instance-id" v:"required" doc:"changes when the device must redo its first-boot steps"`
	LocalHostname string `yaml:"local-hostname" doc:"host name, used when user-data sets none"`
}

// ParseMetaData parses and validates a meta-data document.
func ParseMetaData(file string, data []byte) (*MetaData, error) {
	md := &MetaData{}
	doc, errs := parseYAML(file, data)
	if errs != nil {
		return md, errs
	}
	d := newDecoder(file)
	d.decodeMetaData(doc, md)
	return md, d.errs.asError()
}

func (d *decoder) decodeMetaData(doc *yaml.Node, md *MetaData) {
	root := resolve(doc)
	if isNull(root) {
		d.errorf(root, "", "empty meta-data: want instance-id")
		return
	}
	d.decode(root, reflect.ValueOf(md).Elem(), "", rules{})
	if md.LocalHostname != "" && !hostnameRe.MatchString(md.LocalHostname) {
		d.errorAt("local-hostname", root, "%q is not a host name: lower-case letters, digits and '-', at most 63", md.LocalHostname)
	}
}
