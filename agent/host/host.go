// Package host applies user-data to the running system: host name, time
// zone, kernel parameters and modules, accounts and SSH keys, files, and the
// bootcmd and runcmd commands.
package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/images/kmod"
)

// System is what applying needs from the kernel itself: the calls that
// cannot be pointed at a temp tree. Kernel is the real one.
type System interface {
	Hostname() (string, error)
	SetHostname(name string) error
	// Sysctl reads and SetSysctl writes /proc/sys/<path>.
	Sysctl(path string) (string, error)
	SetSysctl(path, value string) error
	// KernelRelease is uname -r: the modules directory's name.
	KernelRelease() (string, error)
	// ModuleLoaded reports whether a module (kernel spelling) is loaded.
	ModuleLoaded(name string) bool
	LoadModule(m kmod.Module) error
}

// Host applies configuration to the system whose files are under Root.
type Host struct {
	// Root is "/" on a device; tests use a temp tree laid out like the image.
	Root string
	Sys  System
}

// Action is one change Apply made. A second Apply of the same configuration
// makes none.
type Action struct {
	Op     string `json:"op"`
	Detail string `json:"detail"`
}

func (a Action) String() string { return a.Op + " " + a.Detail }

// Kinds of Action.
const (
	OpModule    = "load-module"
	OpSysctl    = "sysctl"
	OpHostname  = "set-hostname"
	OpWriteFile = "write-file"
	OpSymlink   = "symlink"
	OpRemove    = "remove"
	OpMkdir     = "mkdir"
)

// ErrImageAccount is returned for a configured user that the image
// already has (root, system accounts): only its SSH keys are applied.
var ErrImageAccount = errors.New("account belongs to the image")

// Apply brings the system to cfg: kernel modules, then sysctl (which may
// need the modules), host name, time zone, then on a first boot the
// write_files that are not deferred, then accounts and SSH keys, then on a
// first boot the deferred write_files (which may be owned by the new
// accounts). Every step but write_files is reconciled on every boot:
// nothing changes when the system already matches. Apply goes on after a
// failed step and returns every error joined, with the actions it made.
func (h *Host) Apply(ctx context.Context, cfg *cloudinit.Config, firstBoot bool) ([]Action, error) {
	ud := &cfg.UserData
	var acts []Action
	var errs []error
	step := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	step(h.loadModules(ud.Cairn.Modules, &acts))
	step(h.applySysctl(ud.Cairn.Sysctl, &acts))
	step(h.applyHostname(cfg, &acts))
	step(h.applyTimezone(ud.Timezone, &acts))
	if firstBoot {
		step(h.writeFiles(ud.WriteFiles, false, &acts))
	}
	step(h.applyUsers(ud, &acts))
	if firstBoot {
		step(h.writeFiles(ud.WriteFiles, true, &acts))
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return acts, errors.Join(errs...)
}

// TimeServers are the time sources user-data names for the time sync,
// servers before pools; enabled is false when ntp.enabled is false.
func TimeServers(ud *cloudinit.UserData) (servers []string, enabled bool) {
	if ud.NTP == nil {
		return nil, true
	}
	if ud.NTP.Enabled != nil && !*ud.NTP.Enabled {
		return nil, false
	}
	servers = append(servers, ud.NTP.Servers...)
	return append(servers, ud.NTP.Pools...), true
}

// path is a device path under Root.
func (h *Host) path(p string) string {
	root := h.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
