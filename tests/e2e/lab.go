package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ChainReleases are the releases the scenarios publish, in order: 1.0.0
// ships on the disk, 1.1.0 is a good update, 1.2.0 never gets its node
// Ready, 1.3.0 cannot mount root, 1.4.0 is good (served tampered, then
// slowly for the power cut).
var ChainReleases = []Release{
	{Version: "1.0.0", Kind: Good},
	{Version: "1.1.0", Kind: Good},
	{Version: BadRelease, Kind: NeverReady},
	{Version: "1.3.0", Kind: KernelPanic},
	{Version: "1.4.0", Kind: Good},
}

// Lab is everything around one device: the k3s server it joins, the
// channel it follows, and the device itself, ready to power on with
// 1.0.0 published on stable.
type Lab struct {
	Art     *Artifacts
	K3s     *K3sServer
	Channel *Channel
	Device  *Device
	// PXE, when set, serves the device's network boot.
	PXE *PXEServer
	Dir string
	// Logf narrates; Timing records a step's duration.
	Logf   func(format string, args ...any)
	Timing func(step string, d time.Duration)
}

// NewLab starts the host side in dir and makes the device; console, when
// set, sees the device's serial console.
func NewLab(ctx context.Context, art *Artifacts, dir string, console io.Writer) (*Lab, error) {
	return newLab(ctx, art, dir, console, true, func(ch *Channel, dir string, cfg DeviceConfig) (*Device, error) {
		return NewDevice(ctx, art, ch, dir, cfg)
	})
}

// newLab starts the host side in dir, with a k3s server for the device to
// join if hostServer, and makes the device in dir/dev with newDevice.
func newLab(ctx context.Context, art *Artifacts, dir string, console io.Writer, hostServer bool,
	newDevice func(ch *Channel, dir string, cfg DeviceConfig) (*Device, error)) (_ *Lab, err error) {
	l := &Lab{Art: art, Dir: dir, Logf: func(string, ...any) {}, Timing: func(string, time.Duration) {}}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, d := range []string{"k3s", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	cfg := DeviceConfig{Channel: "stable", BootTries: 2, HealthDeadline: "3m"}
	if hostServer {
		if l.K3s, err = StartK3sServer(ctx, filepath.Join(dir, "k3s")); err != nil {
			return nil, err
		}
		cfg.K3sServer, cfg.K3sToken = l.K3s.GuestURL(), l.K3s.Token
	}
	if l.Channel, err = NewChannel(art, filepath.Join(dir, "repo")); err != nil {
		return nil, err
	}
	if err := l.Channel.Publish(ctx, "stable", art.Versions[0]); err != nil {
		return nil, err
	}
	cfg.ChannelURL = l.Channel.URL()
	l.Device, err = newDevice(l.Channel, filepath.Join(dir, "dev"), cfg)
	if err != nil {
		return nil, err
	}
	l.Device.Console = console
	return l, nil
}

// Close powers the device off and stops the servers.
func (l *Lab) Close() {
	if l.Device != nil {
		l.Device.PowerOff()
	}
	if l.Channel != nil {
		l.Channel.Close()
	}
	if l.PXE != nil {
		l.PXE.Close()
	}
	if l.K3s != nil {
		l.K3s.Stop()
	}
}

// Step is what one scenario ended with, for the demo's table.
type Step struct {
	Release string
	Slot    string
	Result  string
	Took    time.Duration
}

func (l *Lab) machine() (*Machine, error) {
	if l.Device.Machine == nil {
		return nil, fmt.Errorf("the device is not powered on")
	}
	return l.Device.Machine, nil
}
