package agent

import "github.com/cairn-edge/cairn/images/channel"

// Where the agent finds what the image baked in and keeps its state. The
// image builder (images/rootfs) installs the files under the same names;
// TestPathsAreWhereTheImageInstallsThem holds the two together.
const (
	// ReleaseKeyPath is the release key's public half (PEM, ECDSA P-256):
	// it proves a slot footer is a signed release.
	ReleaseKeyPath = "/etc/cairn/" + channel.ReleasePublicKeyFile
	// TrustedRootPath is the update channel's trusted TUF root.
	TrustedRootPath = "/etc/cairn/tuf-root.json"
	// BoardPath names the board releases are selected for.
	BoardPath = "/etc/cairn/board"
	// K3sImagePath is the k3s binary the image ships.
	K3sImagePath = "/usr/local/bin/k3s"
	// MachineIDPath seeds the staged-rollout bucket.
	MachineIDPath = "/etc/machine-id"
	// StateDir is the agent's state on the state partition (/var).
	StateDir = "/var/lib/cairn"
)
