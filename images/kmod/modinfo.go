package kmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// ErrWrongKernel means a module file was built for another kernel: another
// architecture or another kernel release. The kernel would refuse to load it.
var ErrWrongKernel = errors.New("kernel module built for another kernel")

// Info is what a module file says about itself: its ELF machine and the
// entries of its .modinfo section.
type Info struct {
	// Name is the module's name= entry, the name the kernel knows it by.
	Name string
	// Vermagic starts with the kernel release the module was built for
	// ("6.1.0-56-arm64 SMP mod_unload modversions aarch64").
	Vermagic string
	Depends  []string
	Machine  elf.Machine
}

// ReadInfo reads the ELF header and the .modinfo section (NUL-terminated
// key=value strings) of the uncompressed module data read from file.
func ReadInfo(file string, data []byte) (*Info, error) {
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: %w", file, err)
	}
	if ef.Type != elf.ET_REL {
		return nil, fmt.Errorf("kernel module %s: ELF type %v, want a relocatable object (ET_REL)", file, ef.Type)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernel module %s: no .modinfo section", file)
	}
	raw, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("kernel module %s: .modinfo: %w", file, err)
	}
	info := &Info{Machine: ef.Machine}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case "name":
			info.Name = v
		case "vermagic":
			info.Vermagic = v
		case "depends":
			if v != "" {
				info.Depends = strings.Split(v, ",")
			}
		}
	}
	return info, nil
}

// Check reads the module data of file and returns its Info if it is a
// module for the kernel release (uname -r) on machine. Otherwise the
// error names the file, what it was built for and what the kernel wants,
// and wraps ErrWrongKernel.
func Check(file string, data []byte, machine elf.Machine, release string) (*Info, error) {
	info, err := ReadInfo(file, data)
	if err != nil {
		return nil, err
	}
	if info.Vermagic == "" {
		return nil, fmt.Errorf("kernel module %s: .modinfo has no vermagic", file)
	}
	built, _, _ := strings.Cut(info.Vermagic, " ")
	if info.Machine != machine || built != release {
		return nil, fmt.Errorf("kernel module %s: built for %v kernel %s (vermagic %q), the kernel is %v %s: %w",
			file, info.Machine, built, info.Vermagic, machine, release, ErrWrongKernel)
	}
	if info.Name == "" {
		return nil, fmt.Errorf("kernel module %s: .modinfo has no name", file)
	}
	return info, nil
}
