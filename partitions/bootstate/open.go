package bootstate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/partitions/grubenv"
	"github.com/cairn-edge/cairn/partitions/ubootenv"
)

// ErrNoBootEnv means neither a GRUB block nor a U-Boot env config was found.
var ErrNoBootEnv = errors.New("no boot environment found")

// Location says where a device keeps its boot environment.
type Location struct {
	// GrubEnv is the GRUB environment block on the mounted ESP (UEFI boards).
	GrubEnv string
	// FwEnvConfig is a fw_env.config naming the U-Boot env copies (U-Boot
	// boards); the same file fw_printenv and fw_setenv read.
	FwEnvConfig string
}

// DefaultLocation is where Cairn images keep the boot environment: the ESP
// is mounted at /boot/efi, U-Boot boards ship /etc/fw_env.config.
func DefaultLocation() Location {
	return Location{GrubEnv: "/boot/efi/EFI/cairn/grubenv", FwEnvConfig: "/etc/fw_env.config"}
}

// DeviceEnv is an opened boot environment and what kind it is.
type DeviceEnv struct {
	Env
	Kind  string // "grub" or "u-boot"
	Path  string
	close func() error
}

// Close releases the files behind the environment.
func (e *DeviceEnv) Close() error { return e.close() }

// Open opens the boot environment of the system under root ("/" on a
// device): the U-Boot env when loc.FwEnvConfig exists, else the GRUB block.
func Open(root string, loc Location) (*DeviceEnv, error) {
	cfgPath := filepath.Join(root, loc.FwEnvConfig)
	data, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		return openUBoot(root, cfgPath, data)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("boot env: %w", err)
	}
	grubPath := filepath.Join(root, loc.GrubEnv)
	env, err := grubenv.Open(grubPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: neither %s nor %s exists", ErrNoBootEnv, cfgPath, grubPath)
	}
	if err != nil {
		return nil, err
	}
	return &DeviceEnv{Env: env, Kind: "grub", Path: grubPath, close: env.Close}, nil
}

func openUBoot(root, cfgPath string, cfg []byte) (*DeviceEnv, error) {
	locs, err := ubootenv.ParseConfig(cfgPath, bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	for i := range locs {
		locs[i].Device = filepath.Join(root, locs[i].Device)
	}
	env, err := ubootenv.Open(locs)
	if err != nil {
		return nil, err
	}
	return &DeviceEnv{Env: env, Kind: "u-boot", Path: cfgPath, close: env.Close}, nil
}
