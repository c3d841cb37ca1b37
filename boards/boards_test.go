package boards

import (
	"errors"
	"strings"
	"testing"
)

func TestShippedBoardsLoad(t *testing.T) {
	want := []string{"generic-x86_64", "qemu-aarch64", "qemu-x86_64", "rpi4"}
	if got := Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.SlotSize != 1<<30 || len(b.InitrdModules) == 0 {
			t.Errorf("%s: slot size %d, modules %v", b.Name, b.SlotSize, b.InitrdModules)
		}
	}
	rpi, _ := Load("rpi4")
	if rpi.HardwareTested || rpi.Bootloader != UBoot || len(rpi.BootFiles) != 1 {
		t.Errorf("rpi4 = %+v", rpi)
	}
	q, _ := Load("qemu-x86_64")
	if q.MachineFirmware() != "/usr/share/OVMF/OVMF_CODE_4M.fd" || q.Bootloader != UEFIGrub {
		t.Errorf("qemu-x86_64 = %+v", q)
	}
}

func TestLoadUnknownBoard(t *testing.T) {
	for _, name := range []string{"", "nope", "../boards/rpi4", ".hidden"} {
		if _, err := Load(name); !errors.Is(err, ErrUnknownBoard) {
			t.Errorf("Load(%q) = %v, want ErrUnknownBoard", name, err)
		}
	}
}

const good = `name: b
arch: amd64
bootloader: uefi-grub
console: ttyS0,115200
layout: x86_64-uefi
kernel_package: linux-image-amd64
slot_size: 1GiB
`

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"unknown key", good + "colour: red\n", "board b.yaml:8: colour: unknown key"},
		{"missing key", strings.Replace(good, "arch: amd64\n", "", 1), "board b.yaml:1: arch: missing"},
		{"bad arch", strings.Replace(good, "amd64\n", "riscv64\n", 1), "board b.yaml:2: arch: \"riscv64\": want amd64 or arm64"},
		{"bootloader without its partition", strings.Replace(good, "uefi-grub", "u-boot", 1), "board b.yaml:5: layout: x86_64-uefi has no CAIRN_BOOT"},
		{"arch against slot type", strings.Replace(good, "arch: amd64", "arch: arm64", 1), "board b.yaml:5: layout: x86_64-uefi types CAIRN_ROOT_A as linux-root-x86-64"},
		{"slot size against layout", strings.Replace(good, "1GiB", "2GiB", 1), "board b.yaml:7: slot_size: 2 GiB: layout x86_64-uefi makes CAIRN_ROOT_A 1 GiB"},
		{"unknown layout", strings.Replace(good, "x86_64-uefi", "floppy", 1), "board b.yaml:5: layout: layout \"floppy\": unknown layout"},
		{"cmdline sets the slot", good + "cmdline: cairn.slot=B\n", "board b.yaml:8: cmdline:"},
		{"cmdline makes the root writable", good + "cmdline: quiet rw\n", "board b.yaml:8: cmdline: bad kernel parameters: \"quiet rw\" set rw"},
		{"console with a space", strings.Replace(good, "ttyS0,115200", "'ttyS0 tty1'", 1), "board b.yaml:4: console:"},
		{"firmware without path", good + "firmware:\n  - package: ovmf\n", "board b.yaml:9: firmware[0].path: missing"},
		{"firmware dest with a slash", good + "firmware:\n  - package: ovmf\n    path: /a\n    dest: x/y\n", "board b.yaml:11: firmware[0].dest:"},
		{"relative firmware path", good + "firmware:\n  - package: ovmf\n    path: a\n", "board b.yaml:10: firmware[0].path:"},
		{"repeated module", good + "initrd_modules: [dm_mod, dm_mod]\n", "board b.yaml:8: initrd_modules[1]: dm_mod repeated"},
		{"boot file also firmware", good + "firmware:\n  - {package: a0, path: /a, dest: c.txt}\nboot_files:\n  c.txt: x\n", "board b.yaml:11: boot_files.c.txt: also the dest"},
		{"bad yaml", good + "packages: [a\n", "board b.yaml:"},
		{"not a bool", good + "hardware_tested: maybe\n", "board b.yaml:8: hardware_tested:"},
		{"repeated key", good + "arch: arm64\n", "board b.yaml:8: arch: repeated (first on line 2)"},
		{"encrypt_state not a bool", good + "encrypt_state: yes please\n", "board b.yaml:8: encrypt_state:"},
		{"encrypt_state without dm_crypt", good + "initrd_modules: [dm_mod]\nencrypt_state: true\n", "board b.yaml:9: encrypt_state: needs dm_crypt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("b.yaml", []byte(c.yaml))
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("Parse error\n  %v\nwant prefix\n  %s", err, c.want)
			}
		})
	}
}

func TestParseGoodBoardDefaults(t *testing.T) {
	b, err := Parse("b.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(b.Components, ",") != "main" || b.MachineFirmware() != "" || b.HardwareTested || b.EncryptState {
		t.Errorf("defaults: %+v", b)
	}
	b, err = Parse("b.yaml", []byte(good+"initrd_modules: [dm_mod, dm_crypt, xts]\nencrypt_state: true\n"))
	if err != nil || !b.EncryptState {
		t.Errorf("encrypt_state: true: %v, %+v", err, b)
	}
}
