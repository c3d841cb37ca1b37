package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
)

// Commands runs bootcmd and runcmd on the running system (not under a
// root: they act on the device). Their output goes to Output.
type Commands struct {
	// Output gets the commands' stdout and stderr; nil is os.Stderr (the
	// agent's journal).
	Output io.Writer
	// Env is added to the commands' environment (PATH, HOME and
	// INSTANCE_ID are always set).
	Env []string
}

// BootCmd runs bootcmd, on every boot, before the network is configured.
// Every command runs even when one fails; the errors are joined.
func (c *Commands) BootCmd(ctx context.Context, cfg *cloudinit.Config) error {
	return c.run(ctx, "bootcmd", cfg.UserData.BootCmd, cfg.MetaData.InstanceID)
}

// RunCmd runs runcmd on an instance's first boot, after the network is up;
// on other boots it does nothing. Record the first boot done only when it
// returns nil, so a failed runcmd runs again on the next boot.
func (c *Commands) RunCmd(ctx context.Context, cfg *cloudinit.Config, firstBoot bool) error {
	if !firstBoot {
		return nil
	}
	return c.run(ctx, "runcmd", cfg.UserData.RunCmd, cfg.MetaData.InstanceID)
}

func (c *Commands) run(ctx context.Context, key string, cmds []cloudinit.Command, instanceID string) error {
	out := c.Output
	if out == nil {
		out = os.Stderr
	}
	var errs []error
	for i, cmd := range cmds {
		argv := cmd.Argv
		if cmd.Shell != "" {
			argv = []string{"/bin/sh", "-c", cmd.Shell}
		}
		x := exec.CommandContext(ctx, argv[0], argv[1:]...)
		x.Dir = "/"
		x.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "INSTANCE_ID=" + instanceID}, c.Env...)
		x.Stdout, x.Stderr = out, out
		if err := x.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %w", key, i, strings.Join(argv, " "), err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}
