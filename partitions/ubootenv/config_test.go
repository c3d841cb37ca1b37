package ubootenv

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigReadsNumbersAsFwSetenvDoes(t *testing.T) {
	cfg := `# U-Boot env on the boot medium
/dev/mmcblk0   0x3f0000  0x10000    # first copy
/dev/mmcblk0   4194304   10000  200 2

`
	got, err := ParseConfig("fw_env.config", strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	want := []Location{
		{Device: "/dev/mmcblk0", Offset: 0x3f0000, Size: 0x10000},
		{Device: "/dev/mmcblk0", Offset: 4194304, Size: 0x10000, SectorSize: 0x200, Sectors: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseConfig = %+v\nwant %+v", got, want)
	}
	one, err := ParseConfig("c", strings.NewReader("env.img 010 0x4000\n"))
	if err != nil || len(one) != 1 || one[0].Offset != 8 {
		t.Errorf("octal offset: %+v, %v", one, err)
	}
	neg, err := ParseConfig("c", strings.NewReader("/dev/sda -0x4000 0x2000\n"))
	if err != nil || neg[0].Offset != -0x4000 {
		t.Errorf("negative offset: %+v, %v", neg, err)
	}
}

func TestParseConfigErrorsNameFileAndLine(t *testing.T) {
	tests := []struct{ cfg, want string }{
		{"", "fw_env.config: no environment location"},
		{"# only a comment\n", "fw_env.config: no environment location"},
		{"\n/dev/x 0\n", "fw_env.config:2: 2 fields"},
		{"/dev/x 0 0x1000 1 2 3\n", "fw_env.config:1: 6 fields"},
		{"/dev/x 0o10 0x1000\n", `fw_env.config:1: offset "0o10"`},
		{"/dev/x 1_000 0x1000\n", `fw_env.config:1: offset "1_000"`},
		{"/dev/x 0 16k\n", `fw_env.config:1: size "16k"`},
		{"/dev/x 0 0\n", "fw_env.config:1: size is zero"},
		{"/dev/x 0 0x1000\n/dev/x 0x1000 0x2000\n", "fw_env.config:2: size 0x2000 differs"},
		{"a 0 1000\nb 0 1000\nc 0 1000\n", "fw_env.config:3: a third location"},
	}
	for _, tt := range tests {
		_, err := ParseConfig("fw_env.config", strings.NewReader(tt.cfg))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%q) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}
