package cloudinit

import (
	"errors"
	"strings"
	"testing"
)

// Each broken config must give exactly these errors, at exactly these
// positions: an operator jumps straight to the line in an editor.
func TestBrokenConfigsReportEveryErrorWithPosition(t *testing.T) {
	cases := []struct {
		name  string
		parse func(string, []byte) error
		input string
		want  []string
	}{
		{"misspelled top-level key", userData, "#cloud-config\nhostnme: box\n",
			[]string{`user-data:2:1: unknown key "hostnme" (did you mean "hostname"?)`}},
		{"misspelled nested key", userData, "#cloud-config\ncairn:\n  k3s:\n    role: server\n    tokn: s3cret\n",
			[]string{`user-data:5:5: cairn.k3s: unknown key "tokn" (did you mean "token"?)`}},
		{"unknown key with no near match", userData, "#cloud-config\npackages: [vim]\n",
			[]string{`user-data:2:1: unknown key "packages"`}},
		{"role not in the list", userData, "#cloud-config\ncairn:\n  k3s:\n    role: sever\n",
			[]string{`user-data:4:11: cairn.k3s.role: "sever" is not one of server, agent (did you mean "server"?)`}},
		{"missing role", userData, "#cloud-config\ncairn:\n  k3s:\n    token: x\n",
			[]string{`user-data:4:5: cairn.k3s: missing required key "role"`}},
		{"wrong type for a bool", userData, "#cloud-config\nusers:\n  - name: ops\n    lock_passwd: yes\n",
			[]string{`user-data:4:18: users[0].lock_passwd: want true or false, got the string "yes"`}},
		{"list where a mapping belongs", userData, "#cloud-config\ncairn: [k3s]\n",
			[]string{`user-data:2:8: cairn: want a mapping, got a list`}},
		{"reboot window unparsable", userData, "#cloud-config\ncairn:\n  update:\n    reboot_policy: window\n    reboot_window: 2am-4am\n",
			[]string{`user-data:5:20: cairn.update.reboot_window: "2am-4am" is not a window HH:MM-HH:MM (like 02:00-04:00), optionally after weekdays (like Sat 02:00-04:00)`}},
		{"reboot window on a day that is none", userData, "#cloud-config\ncairn:\n  update:\n    reboot_policy: window\n    reboot_window: Sa 02:00-04:00\n",
			[]string{`user-data:5:20: cairn.update.reboot_window: window "Sa 02:00-04:00": "Sa" is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`}},
		{"require_tpm not a boolean", userData, "#cloud-config\ncairn:\n  health:\n    require_tpm: sometimes\n",
			[]string{`user-data:4:18: cairn.health.require_tpm: want true or false, got the string "sometimes"`}},
		{"boot tries out of range", userData, "#cloud-config\ncairn:\n  update:\n    boot_tries: 0\n",
			[]string{`user-data:4:17: cairn.update.boot_tries: 0 is out of range 1..10`}},
		{"agent without server", userData, "#cloud-config\ncairn:\n  k3s:\n    role: agent\n    token: t\n",
			[]string{`user-data:4:11: cairn.k3s.role: an agent needs server, the URL of the server to join`}},
		{"token and token_file", userData, "#cloud-config\ncairn:\n  k3s:\n    role: server\n    token: t\n    token_file: /var/lib/token\n",
			[]string{`user-data:6:17: cairn.k3s.token_file: give token or token_file, not both`}},
		{"bad taint and label", userData, "#cloud-config\ncairn:\n  k3s:\n    role: server\n    node_labels: [zone]\n    node_taints: [\"gpu=true:Sometimes\"]\n",
			[]string{`user-data:5:19: cairn.k3s.node_labels[0]: "zone" is not a label key=value`,
				`user-data:6:19: cairn.k3s.node_taints[0]: "gpu=true:Sometimes" is not a taint key=value:NoSchedule|PreferNoSchedule|NoExecute`}},
		{"bad permissions and encoding", userData, "#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: '0999'\n    encoding: base32\n",
			[]string{`user-data:4:18: write_files[0].permissions: "0999" is not an octal file mode (like "0644")`,
				`user-data:5:15: write_files[0].encoding: "base32" is not one of text, b64, base64, gz, gzip, gz+b64, gz+base64, gzip+b64, gzip+base64 (did you mean "base64"?)`}},
		{"health check with both probes and bad timeout", userData, "#cloud-config\ncairn:\n  health:\n    checks:\n      - name: web\n        http: http://localhost/\n        command: [true]\n        timeout: -1s\n",
			[]string{`user-data:5:9: cairn.health.checks[0]: a check needs exactly one of command or http`,
				`user-data:7:18: cairn.health.checks[0].command: command argument: want a string, got the boolean true`,
				`user-data:8:18: cairn.health.checks[0].timeout: "-1s" is not a positive duration (like 30s or 5m)`}},
		{"key given twice", userData, "#cloud-config\nhostname: a\nhostname: b\n",
			[]string{`user-data:3:1: hostname: key given twice`}},
		{"no header", userData, "hostname: a\n",
			[]string{`user-data:1:1: user-data must start with the line #cloud-config (scripts and MIME multipart are not supported)`}},
		{"yaml syntax", userData, "#cloud-config\nhostname: \"a\n",
			[]string{`user-data:2:1: YAML syntax: found unexpected end of stream`}},

		{"bad CIDR", networkConfig, "version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.300/24]\n",
			[]string{`network-config:4:17: ethernets[eth0].addresses[0]: "10.0.0.300/24" is not an address with prefix length (like 192.0.2.10/24)`}},
		{"VLAN id out of range and unknown link", networkConfig, "version: 2\nethernets:\n  eth0: {}\nvlans:\n  vlan5000:\n    id: 5000\n    link: eht0\n",
			[]string{`network-config:6:9: vlans[vlan5000].id: 5000 is out of range 0..4094`,
				`network-config:7:11: vlans[vlan5000].link: no interface with ID "eht0" (did you mean "eth0"?)`}},
		{"bond mode not in the list", networkConfig, "version: 2\nethernets:\n  eth0: {}\nbonds:\n  bond0:\n    interfaces: [eth0]\n    parameters:\n      mode: active-backupp\n",
			[]string{`network-config:8:13: bonds[bond0].parameters.mode: "active-backupp" is not one of balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb (did you mean "active-backup"?)`}},
		{"wrong version", networkConfig, "version: 1\n",
			[]string{`network-config:1:10: version: 1 is out of range 2..2`}},
		{"misspelled interface key", networkConfig, "version: 2\nethernets:\n  eth0:\n    dhcp: true\n",
			[]string{`network-config:4:5: ethernets[eth0]: unknown key "dhcp" (did you mean "dhcp4"?)`}},
		{"route with host bits and family mix", networkConfig, "version: 2\nethernets:\n  eth0:\n    routes:\n      - to: 10.1.2.3/8\n      - to: 10.0.0.0/8\n        via: fe80::1\n      - to: default\n",
			[]string{`network-config:5:13: ethernets[eth0].routes[0].to: "10.1.2.3/8" has host bits set; the network is 10.0.0.0/8`,
				`network-config:7:14: ethernets[eth0].routes[1].via: gateway fe80::1 is not in the address family of 10.0.0.0/8`,
				`network-config:8:9: ethernets[eth0].routes[2]: a default route needs via`}},
		{"bad MAC, set-name too long", networkConfig, "version: 2\nethernets:\n  lan:\n    match: {macaddress: '52:54:00:zz:00:01'}\n    set-name: a-very-long-interface\n",
			[]string{`network-config:4:25: ethernets[lan].match.macaddress: "52:54:00:zz:00:01" is not a MAC address (like 52:54:00:12:34:56)`,
				`network-config:5:15: ethernets[lan].set-name: "a-very-long-interface" is not an interface name (at most 15 characters)`}},
		{"mtu too small, nameserver not an address", networkConfig, "version: 2\nethernets:\n  eth0:\n    mtu: 100\n    nameservers: {addresses: [dns.example]}\n",
			[]string{`network-config:4:10: ethernets[eth0].mtu: 100 is out of range 576..9216`,
				`network-config:5:31: ethernets[eth0].nameservers.addresses[0]: "dns.example" is not an IP address`}},

		{"meta-data without instance-id", metaData, "local-hostname: box\n",
			[]string{`meta-data:1:1: missing required key "instance-id"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse("", []byte(tc.input))
			var errs ValidationErrors
			if !errors.As(err, &errs) {
				t.Fatalf("want ValidationErrors, got %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(sortedLike(tc.want), "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(sortedLike(tc.want), "\n"))
			}
		})
	}
}

// sortedLike orders expected lines the way ValidationErrors sorts them.
func sortedLike(lines []string) []string {
	var es ValidationErrors
	for _, l := range lines {
		es = append(es, ValidationError{Message: l, Line: atoiField(l, 1), Column: atoiField(l, 2)})
	}
	es.sort()
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}

func atoiField(l string, i int) int {
	n := 0
	for _, c := range strings.Split(l, ":")[i] {
		n = n*10 + int(c-'0')
	}
	return n
}

func userData(_ string, b []byte) error { _, err := ParseUserData("user-data", b); return err }
func networkConfig(_ string, b []byte) error {
	_, err := ParseNetworkConfig("network-config", b)
	return err
}
func metaData(_ string, b []byte) error { _, err := ParseMetaData("meta-data", b); return err }

func TestNearestSuggestsOnlyPlausibleKeys(t *testing.T) {
	keys := []string{"hostname", "fqdn", "users", "runcmd", "bootcmd"}
	for word, want := range map[string]string{"hostnme": "hostname", "user": "users", "run-cmd": "runcmd", "packages": "", "x": ""} {
		if got := nearest(word, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", word, got, want)
		}
	}
}
