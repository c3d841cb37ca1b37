package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/images/initrd"
	"github.com/cairn-edge/cairn/images/kmod"
	"github.com/cairn-edge/cairn/images/systemd"
	"github.com/cairn-edge/cairn/partitions"
	"github.com/cairn-edge/cairn/partitions/uboot"
)

// Cairn is what Install puts on top of the Debian root.
type Cairn struct {
	Board *boards.Board
	// Agent and Init are the cairn-agent and cairn-init binaries for the
	// board's architecture (make build's bin/).
	Agent, Init []byte
	// ReleaseKeyPEM is the release public key: in the initramfs for
	// cairn-init, and at /etc/cairn/release-key.pub for the agent.
	ReleaseKeyPEM []byte
	// TUFRoot is the trusted root.json of the update channel; optional.
	TUFRoot []byte
	// K3s is a k3s binary (or its test stand-in); optional.
	K3s []byte
	// Modules are paths of out-of-tree kernel modules (.ko) built for the
	// root's kernel: they go to lib/modules/<release>/updates, and into the
	// initramfs when the board's initrd_modules or TPMModules name them.
	Modules []string
}

// Paths in the root filesystem.
const (
	AgentPath = "usr/bin/cairn-agent"
	K3sPath   = "usr/local/bin/k3s"
	// ResolvConfTarget is where /etc/resolv.conf links to: /run, readable
	// by every user and writable on a read-only root.
	ResolvConfTarget = "../run/resolv.conf"
	TUFRootPath      = "etc/cairn/tuf-root.json"
	// ReleaseKeyPath and BoardPath are read by the agent (agent/paths.go).
	ReleaseKeyPath = "etc/cairn/release-key.pub"
	BoardPath      = "etc/cairn/board"
	AgentUnitPath  = "etc/systemd/system/" + systemd.AgentUnitName
	KernelPath     = "boot/vmlinuz"
	// WatchdogConfPath is systemd's drop-in with RuntimeWatchdog.
	WatchdogConfPath = "etc/systemd/system.conf.d/cairn-watchdog.conf"
	InitrdPath       = "boot/initrd"
)

// reportUnit prints the agent's view of the boot on the console once the
// system is up: the slot table operators and the boot tests read.
const reportUnit = `[Unit]
Description=Cairn: report the booted slot on the console
After=local-fs.target boot-efi.mount
Wants=boot-efi.mount

[Service]
Type=oneshot
ExecStart=/usr/bin/cairn-agent status
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`

// sshKeygenUnit makes the host keys on /var at first boot: a slot image is
// the same on every device, so it must carry no host keys.
const sshKeygenUnit = `[Unit]
Description=Cairn: SSH host keys on the state partition
Before=ssh.service
ConditionPathExists=!/var/lib/cairn/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A -f /var/lib/cairn

[Install]
WantedBy=multi-user.target
`

// Install adds Cairn to the Debian root at root: binaries, units, keys,
// the boot env config, fstab, the /etc entries kept on /var, the kernel as
// /boot/vmlinuz and the initramfs as /boot/initrd. Out-of-tree modules
// are checked against the root's kernel before anything is written.
func Install(root string, c Cairn) error {
	b := c.Board
	extra, err := checkModules(root, b.Arch, c.Modules)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		AgentPath:      c.Agent,
		ReleaseKeyPath: c.ReleaseKeyPEM,
		AgentUnitPath:  systemd.AgentUnit,
		"etc/systemd/system/cairn-boot-report.service": []byte(reportUnit),
		"etc/systemd/system/cairn-ssh-keygen.service":  []byte(sshKeygenUnit),
		"etc/ssh/sshd_config.d/cairn.conf":             []byte(sshdConfig()),
		"etc/fstab":                                    []byte(fstab(b)),
		WatchdogConfPath:                               []byte(watchdogConf()),
		BoardPath:                                      []byte(b.Name + "\n"),
	}
	if c.TUFRoot != nil {
		files[TUFRootPath] = c.TUFRoot
	}
	if c.K3s != nil {
		files[K3sPath] = c.K3s
	}
	if b.Bootloader == boards.UBoot {
		cfg, err := fwEnvConfig(b)
		if err != nil {
			return err
		}
		files["etc/fw_env.config"] = cfg
	}
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == AgentPath || name == K3sPath {
			mode = 0o755
		}
		if err := writeFile(filepath.Join(root, name), data, mode); err != nil {
			return err
		}
	}
	for _, unit := range []string{systemd.AgentUnitName, "cairn-boot-report.service", "cairn-ssh-keygen.service"} {
		if err := symlink("../"+unit, filepath.Join(root, "etc/systemd/system/multi-user.target.wants", unit)); err != nil {
			return err
		}
	}
	if err := persistEtc(root); err != nil {
		return err
	}
	// /etc is on the read-only root: the agent writes the DNS settings it
	// learns (DHCP, network-config) where the link points, on /run.
	if err := symlink(ResolvConfTarget, filepath.Join(root, "etc/resolv.conf")); err != nil {
		return err
	}
	if err := deviceAccounts(root); err != nil {
		return err
	}
	for _, d := range []string{"boot/efi", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := installModules(root, extra); err != nil {
		return err
	}
	return installKernel(root, c)
}

func sshdConfig() string {
	var b strings.Builder
	b.WriteString("# Cairn: host keys live on the state partition (docs/images.md).\n")
	for _, t := range []string{"rsa", "ecdsa", "ed25519"} {
		fmt.Fprintf(&b, "HostKey /var/lib/cairn/etc/ssh/ssh_host_%s_key\n", t)
	}
	// The agent writes the configured keys there, root-owned (agent/host).
	b.WriteString("AuthorizedKeysFile .ssh/authorized_keys /var/lib/cairn/etc/ssh/authorized_keys/%u\n")
	return b.String()
}

func fstab(b *boards.Board) string {
	s := "# Cairn: / is the dm-verity slot and /var the state partition, both mounted by cairn-init.\n" +
		"tmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0\n"
	if b.Bootloader == boards.UEFIGrub {
		// The GRUB environment block the agent writes lives on the ESP.
		s += "PARTLABEL=" + partitions.LabelEFI + " /boot/efi vfat umask=0077,nofail 0 2\n"
	}
	return s
}

func fwEnvConfig(b *boards.Board) ([]byte, error) {
	l, err := partitions.LoadLayout(b.Layout)
	if err != nil {
		return nil, err
	}
	ps, ok := l.Partition(partitions.LabelBoot)
	if !ok {
		return nil, fmt.Errorf("board %s: layout %s has no %s", b.Name, l.Name, partitions.LabelBoot)
	}
	return uboot.FwEnvConfig(uboot.DefaultEnvDevice, ps.Size)
}

// persistEtc turns the /etc entries that belong to the device, not the
// release, into symlinks into the state partition (initrd.PersistentEtc),
// and drops what the packages generated for them: host keys and a machine
// id made at build time would be shared by every device.
func persistEtc(root string) error {
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, e := range initrd.PersistentEtc {
		if e == "ssh" {
			for _, t := range []string{"rsa", "ecdsa", "ed25519"} {
				for _, suffix := range []string{"", ".pub"} {
					name := "ssh/ssh_host_" + t + "_key" + suffix
					if err := symlink("/var/"+initrd.StateEtc+"/"+name, filepath.Join(root, "etc", name)); err != nil {
						return err
					}
				}
			}
			continue
		}
		dst := filepath.Join(root, "etc", e)
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := symlink("/var/"+initrd.StateEtc+"/"+e, dst); err != nil {
			return err
		}
	}
	return nil
}

// deviceAccounts points /etc/localtime at the state partition (a dangling
// link until a timezone is configured: glibc then uses UTC) and makes glibc
// read the accounts the agent keeps in /var/lib/extrausers after /etc's
// (docs/config.md, "Accounts").
func deviceAccounts(root string) error {
	if err := symlink("/var/"+initrd.StateEtc+"/localtime", filepath.Join(root, "etc/localtime")); err != nil {
		return err
	}
	path := filepath.Join(root, "etc/nsswitch.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		db, _, _ := strings.Cut(l, ":")
		if (db == "passwd" || db == "group" || db == "shadow") && !strings.Contains(l, "extrausers") {
			lines[i] = strings.TrimRight(l, " \t") + " extrausers"
		}
	}
	return writeFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}

// installKernel copies the board's kernel to /boot/vmlinuz and writes the
// initramfs to /boot/initrd, dropping the initramfs the Debian packages made.
func installKernel(root string, c Cairn) error {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(root, "lib/modules/*"))
	if len(kernels) != 1 || len(mods) != 1 {
		return fmt.Errorf("root %s: want one kernel and one modules directory, found %d and %d", root, len(kernels), len(mods))
	}
	kernel, err := os.ReadFile(kernels[0])
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(root, KernelPath), kernel, 0o644); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(root, "boot/initrd.img-*"))
	for _, o := range old {
		if err := os.Remove(o); err != nil {
			return err
		}
	}
	modules := slices.Clone(c.Board.InitrdModules)
	for _, m := range slices.Concat(SlotModules, NetbootModules, WatchdogModules, TPMModules) {
		if _, err := kmod.ResolveModules(mods[0], []string{m}); err == nil {
			modules = append(modules, m)
		}
	}
	return WriteInitramfs(filepath.Join(root, InitrdPath), Initramfs{
		Init: c.Init, ReleaseKeyPEM: c.ReleaseKeyPEM, Board: c.Board.Name,
		ModulesDir: mods[0], Modules: modules,
	})
}

// SlotModules go into every initramfs whose kernel has them as modules:
// the slot filesystem (ext4 is built into Debian's cloud kernel, a module
// of linux-image-arm64) and the crc32c its metadata checksums need, which
// ext4 asks the crypto API for by name, not as a module dependency.
var SlotModules = []string{"crc32c_generic", "ext4"}

// NetbootModules go into every initramfs whose kernel has them, so that the
// same initramfs can boot from the network (docs/images.md, "PXE"): loop
// devices for a slot image in RAM and the common wired NICs.
var NetbootModules = []string{"loop", "virtio_net", "e1000e", "igb", "r8169"}

// WatchdogModules go into every initramfs whose kernel has them, after the
// board's own: the kernel's software watchdog, which becomes
// /dev/watchdog0, the one cairn-init arms, only on a board whose
// initrd_modules name no hardware watchdog driver.
var WatchdogModules = []string{"softdog"}

// RuntimeWatchdog is how often systemd must ping the watchdog cairn-init
// armed once it has taken it over; RebootWatchdog bounds a reboot or
// shutdown. A hung PID 1, or a kernel that stops scheduling it, resets the
// device.
const (
	RuntimeWatchdog = 2 * time.Minute
	RebootWatchdog  = 10 * time.Minute
)

// watchdogConf is systemd's drop-in that takes over the watchdog.
func watchdogConf() string {
	return fmt.Sprintf(`# Cairn: systemd pings the watchdog cairn-init armed (docs/images.md).
[Manager]
RuntimeWatchdogSec=%d
RebootWatchdogSec=%d
`, int(RuntimeWatchdog/time.Second), int(RebootWatchdog/time.Second))
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func symlink(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(target, link)
}
