package network

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNamespace runs fn on an OS thread that has entered ns. Sockets fn opens
// stay in ns after it returns. fn runs on a goroutine of its own: if the
// thread cannot return to its namespace, the goroutine exits while still
// locked, and the runtime throws that thread away instead of reusing it.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("netns: return to %s: %w", orig, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// driverOf returns the kernel driver of link name in ns, as ethtool -i
// shows it.
func driverOf(ns netns.NsHandle, name string) (string, error) {
	var fd int
	err := inNamespace(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("link %s: driver: socket: %w", name, err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return "", fmt.Errorf("link %s: driver: %w", name, err)
	}
	return unix.ByteSliceToString(info.Driver[:]), nil
}
