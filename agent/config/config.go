// Package config finds, merges and validates the device's NoCloud
// configuration, keeping the last good one.
package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	cloudinit "github.com/cairn-edge/cairn/cloud-init"
	"github.com/cairn-edge/cairn/partitions"
)

// Where a device keeps what Load reads, relative to Options.Root.
const (
	DefaultImageDefaults = "usr/share/cairn/cloud-init"
	DefaultStateDir      = "var/lib/cairn/cloud-init"
	DefaultCmdline       = "proc/cmdline"
	DefaultByLabelDir    = "dev/disk/by-label"
)

// CIDATALabel is the GPT partition label of a CIDATA partition on Cairn
// layouts; volumes found by file-system label come from ByLabelDir.
const CIDATALabel = "CIDATA"

// Options says where Load looks. Empty paths take the Default* paths under
// Root; non-empty paths are used as they are.
type Options struct {
	Root          string // "/" on a device
	ImageDefaults string // seed directory baked into the image
	StateDir      string // cloudinit.Store: last good config, seed cache, instance-id
	Cmdline       string // kernel command line file, for ds=nocloud;s=URL/
	ByLabelDir    string // udev's /dev/disk/by-label
	// HTTPClient fetches a network seed; nil is a client with a 30 s timeout.
	HTTPClient *http.Client
	// Fetcher overrides retries and backoff of the network seed; nil is
	// cloudinit's default (5 attempts, 1 s doubling to 30 s) with HTTPClient.
	Fetcher *cloudinit.Fetcher
}

func (o Options) path(p, def string) string {
	if p != "" {
		return p
	}
	root := o.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, def)
}

// Result is the configuration the agent applies and how it came to be.
type Result struct {
	// Config is the configuration to apply: the new one when it validated,
	// else the last good one. nil when no configuration ever validated (or
	// the device has none): the agent then runs DHCP on every wired link
	// and stays reachable for a fix.
	Config *cloudinit.Config
	// Invalid lists what is wrong with the new configuration; empty when it
	// validated. They are shown in cairn-agent status.
	Invalid cloudinit.ValidationErrors
	// SourceErrors are sources that exist but could not be read (a
	// corrupt card, an unreachable seed with no cached copy). Like an
	// invalid config, they make Load keep the last good configuration:
	// a card that fails to read must not erase the box's configuration.
	SourceErrors []string
	// Sources are the origins merged, lowest priority first: a directory,
	// a device, a URL ("(cached)" appended when the seed came from /var).
	Sources []string
	// LastGood is true when Config is the kept last good configuration.
	LastGood bool
	// FirstBoot is true when Config's instance-id has not completed its
	// first-boot steps: call MarkFirstBootDone once they all succeeded.
	FirstBoot bool

	store cloudinit.Store
}

// InstanceID is the applied configuration's instance-id, or "".
func (r *Result) InstanceID() string {
	if r.Config == nil {
		return ""
	}
	return r.Config.MetaData.InstanceID
}

// MarkFirstBootDone records that the first-boot steps of Config's
// instance-id completed, so they do not run again.
func (r *Result) MarkFirstBootDone() error {
	if r.Config == nil {
		return errors.New("config: no configuration to mark first boot done for")
	}
	return r.store.MarkFirstBootDone(r.InstanceID())
}

// Load reads every source (image defaults < CIDATA volume < network seed
// from the kernel command line), merges and validates them, and returns the
// configuration to apply. The returned error is for what stops Load itself
// (an unreadable state directory, a cancelled context); a bad configuration
// or source is reported in Result, never applied.
func Load(ctx context.Context, o Options) (*Result, error) {
	r := &Result{store: cloudinit.Store{Dir: o.path(o.StateDir, DefaultStateDir)}}
	seeds := r.readSources(ctx, o)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var err error
	switch {
	case len(r.SourceErrors) > 0:
		r.Config, err = r.store.LastGood()
		r.LastGood = r.Config != nil
	case len(seeds) == 0:
		return r, nil // nothing configured: not an error
	default:
		r.Config, err = r.store.KeepLastGood(seeds)
		var ve cloudinit.ValidationErrors
		if errors.As(err, &ve) {
			r.Invalid = ve
			r.LastGood = r.Config != nil
		}
	}
	if errors.Is(err, cloudinit.ErrNoLastGood) {
		err = nil
	}
	if err != nil && !errors.Is(err, cloudinit.ErrInvalid) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if r.Config != nil {
		if r.FirstBoot, err = r.store.FirstBootNeeded(r.InstanceID()); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return r, nil
}

// readSources returns the seeds found, in merge order, and records the
// sources that exist but failed.
func (r *Result) readSources(ctx context.Context, o Options) []cloudinit.Seed {
	var seeds []cloudinit.Seed
	add := func(s cloudinit.Seed, origin string) {
		seeds = append(seeds, s)
		r.Sources = append(r.Sources, origin)
	}
	defaults := o.path(o.ImageDefaults, DefaultImageDefaults)
	if s, err := cloudinit.ReadSeedDir(defaults); err == nil {
		add(s, s.Origin)
	} else if !errors.Is(err, cloudinit.ErrNoSeed) {
		r.SourceErrors = append(r.SourceErrors, err.Error())
	}
	for _, dev := range cidataDevices(o) {
		s, err := cloudinit.ReadSeedImage(dev)
		if err != nil {
			r.SourceErrors = append(r.SourceErrors, err.Error())
			continue
		}
		add(s, s.Origin)
		break // one card; a second labelled volume is ignored
	}
	seedURL, err := cmdlineSeed(o.path(o.Cmdline, DefaultCmdline))
	if err != nil {
		r.SourceErrors = append(r.SourceErrors, err.Error())
	}
	if seedURL != "" {
		f := o.Fetcher
		if f == nil {
			f = &cloudinit.Fetcher{Client: o.HTTPClient}
		}
		s, cached, err := r.store.FetchSeed(ctx, f, seedURL)
		switch {
		case err != nil:
			r.SourceErrors = append(r.SourceErrors, err.Error())
		case cached:
			add(s, seedURL+" (cached)")
		default:
			add(s, seedURL)
		}
	}
	return seeds
}

// cidataDevices lists the volumes labelled CIDATA or cidata: by file-system
// label as udev sees them, else a GPT partition labelled CIDATA.
func cidataDevices(o Options) []string {
	devs := cloudinit.LabelledSeedDevices(o.path(o.ByLabelDir, DefaultByLabelDir))
	if len(devs) > 0 {
		return devs
	}
	root := o.Root
	if root == "" {
		root = "/"
	}
	dev, err := partitions.FindByLabel(root, CIDATALabel)
	if err != nil {
		return nil
	}
	return []string{filepath.Join(root, dev)}
}

// cmdlineSeed reads the kernel command line file and returns its NoCloud
// seed URL, "" when it names none or the file does not exist.
func cmdlineSeed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("kernel command line %s: %w", path, err)
	}
	return cloudinit.SeedURL(string(b))
}
