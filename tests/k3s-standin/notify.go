package main

import "github.com/coreos/go-systemd/v22/daemon"

// notifyReady tells systemd the node is up, as k3s does under its
// Type=notify unit: a server once its apiserver answers, an agent once it
// joined. Without NOTIFY_SOCKET (not under systemd) it does nothing.
func notifyReady() {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
}
