package cloudinit

import "testing"

func TestHeaderWithNothingElseIsAnEmptyConfig(t *testing.T) {
	for _, data := range []string{"#cloud-config\n", "#cloud-config\n# no settings yet\n\n", ""} {
		ud, err := ParseUserData("user-data", []byte(data))
		if err != nil || ud.Hostname != "" {
			t.Errorf("%q: %+v, %v", data, ud, err)
		}
	}
}
