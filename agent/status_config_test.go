package agent_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent"
	"github.com/cairn-edge/cairn/agent/config"
	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

func TestStatusShowsTheRefusedConfigsErrorsWithLineAndColumn(t *testing.T) {
	r := &config.Result{
		Config:   &cloudinit.Config{MetaData: cloudinit.MetaData{InstanceID: "store-0042-v1"}},
		LastGood: true,
		Sources:  []string{"/dev/sdb1"},
		Invalid: cloudinit.ValidationErrors{{File: "/dev/sdb1:user-data", Line: 5, Column: 5,
			Path: "write_files[0]", Message: `unknown key "permisions" (did you mean permissions?)`}},
		SourceErrors: []string{"seed http://10.0.0.1/seed/: 5 attempts: connection refused"},
	}
	st := &agent.Status{Config: agent.NewConfigStatus(r)}
	var text bytes.Buffer
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"config: instance store-0042-v1, last good (the newest was refused)\n",
		`config error: /dev/sdb1:user-data:5:5: write_files[0]: unknown key "permisions" (did you mean permissions?)` + "\n",
		"config error: seed http://10.0.0.1/seed/: 5 attempts: connection refused\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, text.String())
		}
	}
	st.Config = agent.NewConfigStatus(&config.Result{
		Config:  &cloudinit.Config{MetaData: cloudinit.MetaData{InstanceID: "i-2"}},
		Sources: []string{"/usr/share/cairn/cloud-init", "/dev/sdb1"},
	})
	text.Reset()
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "config: instance i-2 from /usr/share/cairn/cloud-init, /dev/sdb1\n"; !strings.Contains(text.String(), want) || strings.Contains(text.String(), "config error") {
		t.Errorf("status lacks %q or shows errors:\n%s", want, text.String())
	}
}
