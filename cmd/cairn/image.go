package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-edge/cairn/boards"
	"github.com/cairn-edge/cairn/cmd/internal/cli"
	"github.com/cairn-edge/cairn/images/disk"
	"github.com/cairn-edge/cairn/images/rootfs"
	"github.com/cairn-edge/cairn/partitions"
)

func newImageCmd(opts *cli.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build a board's root filesystem and flashable disk images",
	}
	cmd.AddCommand(newImageRootfsCmd(opts), newImageBuildCmd(opts), newImagePXECmd(opts))
	return cmd
}

func progress(w io.Writer) func(string, ...any) {
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func readOptional(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

func newImageRootfsCmd(opts *cli.Options) *cobra.Command {
	var board, agent, init, pub, tufRoot, k3s, out, cache string
	var modules []string
	var epoch int64
	cmd := &cobra.Command{
		Use:   "rootfs",
		Short: "Build a board's root tree: Debian (mmdebstrap, as root), cairn-agent, its units and the cairn-init initramfs",
		Long: "Build a board's root tree for `cairn slot build --root`: a minimal Debian bookworm from the\n" +
			"mirror apt uses (cached by its inputs), cairn-agent, the trusted TUF root, and /boot/vmlinuz\n" +
			"and /boot/initrd with cairn-init as /init. --module adds an out-of-tree kernel module built\n" +
			"for the root's kernel (checked before anything is written) under lib/modules/RELEASE/updates.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := boards.Load(board)
			if err != nil {
				return err
			}
			c := rootfs.Cairn{Board: b, Modules: modules}
			for _, f := range []struct {
				flag, path string
				dst        *[]byte
			}{{"agent", agent, &c.Agent}, {"init", init, &c.Init}, {"release-public-key", pub, &c.ReleaseKeyPEM}, {"tuf-root", tufRoot, &c.TUFRoot}, {"k3s", k3s, &c.K3s}} {
				if *f.dst, err = readOptional(f.path); err != nil {
					return fmt.Errorf("--%s: %w", f.flag, err)
				}
			}
			if c.Agent == nil || c.Init == nil || c.ReleaseKeyPEM == nil {
				return fmt.Errorf("--agent, --init and --release-public-key are required")
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("--out %s exists; give a new directory", out)
			}
			if cache == "" {
				dir, err := os.UserCacheDir()
				if err != nil {
					return fmt.Errorf("--cache: %w", err)
				}
				cache = filepath.Join(dir, "cairn", "rootfs")
			}
			logf := progress(cmd.ErrOrStderr())
			deb, err := rootfs.ForBoard(b, "/etc/apt", epoch)
			if err != nil {
				return err
			}
			// A foreign root's maintainer scripts run under qemu-user-static.
			if err := rootfs.EnableArch(b.Arch); err != nil {
				return err
			}
			base, err := rootfs.Bootstrap(cmd.Context(), deb, cache, logf)
			if err != nil {
				return err
			}
			if msg, err := exec.CommandContext(cmd.Context(), "cp", "-a", base, out).CombinedOutput(); err != nil {
				return fmt.Errorf("copy %s to %s: %w: %s", base, out, err, msg)
			}
			if err := rootfs.Install(out, c); err != nil {
				// out did not exist before: leave no half-made tree behind.
				os.RemoveAll(out)
				return err
			}
			logf("root tree for %s in %s", b.Name, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&board, "board", "", "board name (cairn boards)")
	f.StringVar(&agent, "agent", "", "cairn-agent binary for the board's architecture")
	f.StringVar(&init, "init", "", "cairn-init binary for the board's architecture")
	f.StringVar(&pub, "release-public-key", "", "release public key (PEM) the initramfs checks slot footers with")
	f.StringVar(&tufRoot, "tuf-root", "", "trusted root.json of the update channel")
	f.StringVar(&k3s, "k3s", "", "k3s binary to install as /usr/local/bin/k3s")
	f.StringArrayVar(&modules, "module", nil, "out-of-tree kernel module (.ko) for the board's kernel; repeatable")
	f.StringVar(&out, "out", "", "directory to create")
	f.StringVar(&cache, "cache", "", "where Debian roots are cached (default: the user cache directory)")
	f.Int64Var(&epoch, "source-date-epoch", sourceDateEpoch(), "timestamps of the Debian root (default $SOURCE_DATE_EPOCH)")
	return cmd
}

func sourceDateEpoch() int64 {
	var e int64
	fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &e)
	return e
}

func newImageBuildCmd(opts *cli.Options) *cobra.Command {
	var board, userData, metaData string
	var o disk.Options
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a flashable disk image (.img, .img.bmap, .img.zst) from a slot image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := boards.Load(board)
			if err != nil {
				return err
			}
			o.Board = b
			if o.SlotA == "" || o.Out == "" {
				return fmt.Errorf("--slot and --out are required")
			}
			if o.UserData, err = readOptional(userData); err != nil {
				return fmt.Errorf("--cidata: %w", err)
			}
			if o.MetaData, err = readOptional(metaData); err != nil {
				return fmt.Errorf("--meta-data: %w", err)
			}
			o.SourceDateEpoch = sourceDateEpoch()
			o.Logf = progress(cmd.ErrOrStderr())
			res, err := disk.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), imageSummary{res})
		},
	}
	f := cmd.Flags()
	f.StringVar(&board, "board", "", "board name (cairn boards)")
	f.StringVar(&o.SlotA, "slot", "", "slot image for slot A (cairn slot build)")
	f.StringVar(&o.SlotB, "slot-b", "", "slot image for slot B; default: B left empty")
	f.StringVar(&o.RootDir, "root", "", "root tree slot A was built from, for boards with firmware on the boot partition")
	f.StringVar(&o.Out, "out", "", "disk image to write; .bmap and .zst are written beside it")
	f.StringVar(&userData, "cidata", "", "cloud-init user-data for a CIDATA partition")
	f.StringVar(&metaData, "meta-data", "", "cloud-init meta-data for the CIDATA partition (default: an instance-id)")
	f.BoolVar(&o.NoCompress, "no-zstd", false, "do not write the .zst")
	return cmd
}

type imageSummary struct{ *disk.Result }

func (s imageSummary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s image for %s, release %s, built in %.1fs\n", s.Layout, s.Board, s.Release, s.Seconds)
	fmt.Fprintf(w, "  %s  %s (%s mapped)  sha256 %s\n", s.Image.Path, partitions.FormatSize(s.Image.Bytes), partitions.FormatSize(s.MappedBytes), s.Image.SHA256)
	fmt.Fprintf(w, "  %s  sha256 %s\n", s.Bmap.Path, s.Bmap.SHA256)
	if s.Zstd != nil {
		fmt.Fprintf(w, "  %s  %s  sha256 %s\n", s.Zstd.Path, partitions.FormatSize(s.Zstd.Bytes), s.Zstd.SHA256)
	}
	return nil
}

func newImagePXECmd(opts *cli.Options) *cobra.Command {
	var board string
	var o disk.PXEOptions
	cmd := &cobra.Command{
		Use:   "pxe",
		Short: "Write a PXE bundle: kernel, initramfs, slot image, boot partition and iPXE scripts",
		Long: "Write a network boot bundle into a new directory, to be served over HTTP at --base-url:\n" +
			"boot.ipxe runs the slot image from RAM (cairn.pxe=diskless); with --install-disk,\n" +
			"install.ipxe writes the full disk layout onto that disk and reboots into it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := boards.Load(board)
			if err != nil {
				return err
			}
			if o.Slot == "" || o.Out == "" || o.BaseURL == "" {
				return fmt.Errorf("--slot, --out and --base-url are required")
			}
			o.Board = b
			o.SourceDateEpoch = sourceDateEpoch()
			o.Logf = progress(cmd.ErrOrStderr())
			res, err := disk.BuildPXE(cmd.Context(), o)
			if err != nil {
				return err
			}
			return opts.Print(cmd.OutOrStdout(), pxeSummary{res})
		},
	}
	f := cmd.Flags()
	f.StringVar(&board, "board", "", "board name (cairn boards)")
	f.StringVar(&o.Slot, "slot", "", "slot image (cairn slot build)")
	f.StringVar(&o.Out, "out", "", "directory to create")
	f.StringVar(&o.BaseURL, "base-url", "", "URL the directory is served at, as the machines see it (http://...)")
	f.StringVar(&o.InstallDisk, "install-disk", "", "also write install.ipxe, installing onto this disk (e.g. /dev/sda)")
	return cmd
}

type pxeSummary struct{ *disk.PXEResult }

func (s pxeSummary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "PXE bundle for %s, release %s, built in %.1fs\n", s.Board, s.Release, s.Seconds)
	for _, a := range s.Files {
		fmt.Fprintf(w, "  %s  %s  sha256 %s\n", a.Path, partitions.FormatSize(a.Bytes), a.SHA256)
	}
	return nil
}
