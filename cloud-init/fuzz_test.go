package cloudinit

import (
	"errors"
	"testing"
)

// checkFuzzResult holds for any input: no panic (the fuzzer catches those),
// and an error is either nil or ValidationErrors whose every entry has a
// position, so the CLI can always print file:line:col.
func checkFuzzResult(t *testing.T, err error) {
	if err == nil {
		return
	}
	var errs ValidationErrors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error is not ValidationErrors: %v", err)
	}
	for _, e := range errs {
		if e.Line < 1 || e.Column < 1 || e.Message == "" {
			t.Fatalf("error without position or message: %#v", e)
		}
	}
}

func FuzzParseUserData(f *testing.F) {
	f.Add([]byte(testUserData))
	f.Add([]byte("#cloud-config\ncairn:\n  k3s: {role: agent, server: 'https://s:6443', token: t}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseUserData("user-data", data)
		checkFuzzResult(t, err)
	})
}

func FuzzParseNetworkConfig(f *testing.F) {
	f.Add([]byte(testNetwork))
	f.Add([]byte("version: 2\nvlans:\n  v1: {id: 1, link: eth0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseNetworkConfig("network-config", data)
		checkFuzzResult(t, err)
	})
}
