package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// Kind is what a test release does once installed.
type Kind string

// The kinds of test release.
const (
	// Good comes up healthy.
	Good Kind = "good"
	// NeverReady boots, but its k3s node never becomes Ready: the health
	// gate fails and the agent rolls back.
	NeverReady Kind = "never-ready"
	// KernelPanic carries an initramfs without /init: the kernel cannot
	// mount root and panics, the agent never runs, and only the
	// bootloader's counter brings the device back.
	KernelPanic Kind = "kernel-panic"
)

// Release is one release to build: a version and what it does.
type Release struct {
	Version string
	Kind    Kind
}

// Notes are the release notes, saying what the release is for.
func (r Release) Notes() string { return "e2e test release: " + string(r.Kind) }

// NotReadyMessage is the node condition a NeverReady release reports.
// It is written by a shell command inside a systemd unit: no quotes in it.
const NotReadyMessage = "cairn e2e: the kubelet of this release never becomes ready"

// Paths the e2e layer adds to every release's root.
const (
	reportScript = "usr/lib/cairn-e2e/report"
	reportUnit   = "etc/systemd/system/cairn-e2e-report.service"
	k3sUnit      = "etc/systemd/system/cairn-e2e-k3s.service"
	wantsDir     = "etc/systemd/system/multi-user.target.wants"
)

type overlayFile struct {
	path string
	mode os.FileMode
	data string
}

// overlay is what the release adds to the root tree: the console reporter
// and the switch that decides whether the stand-in's node becomes Ready.
func (r Release) overlay() []overlayFile {
	k3s := "ExecStart=/bin/rm -f /var/lib/rancher/k3s/standin-notready\n"
	if r.Kind == NeverReady {
		k3s = "ExecStart=/bin/sh -c 'mkdir -p /var/lib/rancher/k3s && echo \"" + NotReadyMessage +
			"\" > /var/lib/rancher/k3s/standin-notready'\n"
	}
	return []overlayFile{
		{reportScript, 0o755, reportSh},
		{reportUnit, 0o644, reportService},
		{k3sUnit, 0o644, k3sServiceHead + k3s + "\n[Install]\nWantedBy=multi-user.target\n"},
	}
}

// apply turns the root tree into this release's: the overlay, and for a
// KernelPanic release an initramfs without /init. The original initramfs
// is kept aside at pristine, outside the tree, so releases can be applied
// one after the other.
func (r Release) apply(root, pristine string) error {
	for _, f := range r.overlay() {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	for _, unit := range []string{reportUnit, k3sUnit} {
		link := filepath.Join(root, wantsDir, filepath.Base(unit))
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink("../"+filepath.Base(unit), link); err != nil {
			return err
		}
	}
	initrd := filepath.Join(root, "boot/initrd")
	if _, err := os.Stat(pristine); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(initrd, pristine); err != nil {
			return err
		}
	}
	if r.Kind != KernelPanic {
		return copyFile(pristine, initrd, 0o644)
	}
	data, err := emptyInitramfs()
	if err != nil {
		return err
	}
	return os.WriteFile(initrd, data, 0o644)
}

// emptyInitramfs is a valid newc archive holding only /dev: the kernel
// unpacks it, finds no /init, has no root= to mount and panics.
func emptyInitramfs() ([]byte, error) {
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecordsAndDirs(w, []cpio.Record{cpio.Directory("dev", 0o755)}); err != nil {
		return nil, fmt.Errorf("empty initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const k3sServiceHead = `[Unit]
Description=Cairn e2e: whether this release's k3s node becomes Ready
Before=cairn-agent.service k3s.service k3s-agent.service
RequiresMountsFor=/var

[Service]
Type=oneshot
RemainAfterExit=yes
`

const reportService = `[Unit]
Description=Cairn e2e: the device's own status on the console
After=local-fs.target

[Service]
ExecStart=/usr/lib/cairn-e2e/report
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TTYVHangup=no
Restart=always
RestartSec=2s

[Install]
WantedBy=multi-user.target
`

// reportSh prints the device's status (cairn-agent status --output json,
// base64 on one line) whenever it changes and every 30 s, once per boot
// systemd's state and failed units when the boot has finished, answers the
// test host's nonce with cairn-agent attest once per boot, and asks the
// agent to check the channel every 10 s as an operator would. The test
// host's address comes from e2e.env on the CIDATA volume.
const reportSh = `#!/bin/bash
set -u -o pipefail
seed=/run/cairn-e2e/seed
mkdir -p "$seed"
for i in $(seq 30); do
	[ -e /dev/disk/by-label/CIDATA ] && break
	sleep 1
done
if mount -o ro /dev/disk/by-label/CIDATA "$seed" 2>/dev/null && [ -f "$seed/e2e.env" ]; then
	. "$seed/e2e.env"
fi

http_get() {
	exec 3<>"/dev/tcp/$E2E_HOST/$E2E_PORT" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$E2E_HOST" >&3
	local line
	while IFS= read -r line <&3; do
		[ -z "${line%$'\r'}" ] && break
	done
	cat <&3
	exec 3<&-
}

# k3s_report shows what k3s does while it is not (yet) active: its unit's
# state, its last journal lines and its rendered config without the token.
k3s_report() {
	echo "cairn-e2e k3s-log state $(systemctl is-active k3s.service)"
	journalctl -b -u k3s.service -n 12 --no-pager -o cat | sed 's/^/cairn-e2e k3s-log /'
	sed -E 's/^(token|agent-token):.*/\1: (hidden)/' /etc/rancher/k3s/config.yaml 2>&1 | sed 's/^/cairn-e2e k3s-config /'
}

attempts=0 last= lastprint=0 n=0 units_told=
while :; do
	if [ -z "$units_told" ]; then
		state=$(systemctl is-system-running 2>/dev/null)
		case "$state" in
		initializing | starting) ;;
		*)
			wd=/sys/class/watchdog/watchdog0
			echo "cairn-e2e watchdog $(cat $wd/state $wd/timeout 2>&1 | tr '\n' ' ')$(cat $wd/identity 2>&1)"
			echo "cairn-e2e units $state failed:$(systemctl --failed --plain --no-legend --no-pager | awk '{printf " %s", $1}')"
			units_told=1
			;;
		esac
	fi
	now=$(date +%s)
	if s=$(cairn-agent status --output json 2>&1 | base64 -w0); then
		if [ "$s" != "$last" ] || [ $((now - lastprint)) -ge 30 ]; then
			echo "cairn-e2e status $s"
			if [ $((now - lastprint)) -ge 30 ] && ! systemctl -q is-active cairn-agent.service; then
				journalctl -u cairn-agent.service -n 8 --no-pager -o cat | sed 's/^/cairn-e2e agent-log /'
			fi
			if [ $((now - lastprint)) -ge 30 ] && ! systemctl -q is-active k3s.service; then
				k3s_report
			fi
			last=$s lastprint=$now
		fi
	else
		echo "cairn-e2e status-error $s"
	fi
	if [ "$attempts" -lt 5 ] && [ -n "${E2E_PORT:-}" ] && nonce=$(http_get /e2e/nonce 2>/dev/null) && [ -n "$nonce" ]; then
		attempts=$((attempts + 1))
		if b=$(cairn-agent attest --nonce "$nonce" 2>/run/cairn-e2e/attest.err | base64 -w0); then
			echo "cairn-e2e attest $nonce $b"
			attempts=5
		else
			echo "cairn-e2e attest-error $(tr '\n' ' ' </run/cairn-e2e/attest.err)"
		fi
	fi
	if [ $((n % 2)) -eq 1 ]; then
		cairn-agent update check >/dev/null 2>&1
	fi
	n=$((n + 1))
	# Each cairn-agent command is a Go program starting under TCG, many
	# times its 15-20 ms of CPU on the host: asking every 5 s, not 2 s,
	# leaves more of the guest's one CPU to the installs.
	sleep 5
done
`
