package update

import (
	"context"
	"fmt"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// SystemRebooter reboots the machine it runs on: sync, then reboot(2).
// systemd is not asked, on purpose: a hung unit must not keep a device from
// leaving a failed trial, and /var is written through fsync already.
type SystemRebooter struct {
	Log *zap.Logger // nil: no logs
}

// Reboot does not return on success.
func (r SystemRebooter) Reboot(_ context.Context, reason string) error {
	if r.Log != nil {
		r.Log.Warn("rebooting", zap.String("reason", reason))
		r.Log.Sync()
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot(2): %w", err)
	}
	return nil
}
