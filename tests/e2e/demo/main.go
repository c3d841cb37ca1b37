// Command demo is `make demo`: it builds a qemu-x86_64 device and its
// releases, boots it with its console in the terminal, and walks it
// through a first boot, an update and a bad release that rolls back by
// itself, then prints what happened. It leaves nothing running.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cairn-edge/cairn/tests/e2e"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the device's Debian root is built with mmdebstrap")
	}
	work, err := os.MkdirTemp("", "cairn-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
	}
	say("Building cairn, the agent, a Debian root and five signed releases (cached after the first run)")
	start := time.Now()
	art, err := e2e.Build(ctx, e2e.BuildOptions{Board: "qemu-x86_64", Releases: e2e.ChainReleases, WorkDir: work,
		Logf: func(f string, a ...any) { fmt.Fprintf(out, "    "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	say("Built in %v. Starting a k3s server and the update channel on this machine", time.Since(start).Round(time.Second))
	lab, err := e2e.NewLab(ctx, art, work, &consoleFilter{w: out})
	if err != nil {
		return err
	}
	defer lab.Close()
	lab.Logf = say
	steps := []struct {
		intro string
		run   func(context.Context) (*e2e.Step, error)
	}{
		{"Scenario 1: first boot of a device flashed with 1.0.0 (OVMF, GRUB, TPM emulator; its console follows)", lab.FirstBoot},
		{"Scenario 2: publishing 1.1.0 on stable; the device installs it into slot B and reboots", lab.UpdateCommits},
		{"Scenario 3: publishing 1.2.0, whose Kubernetes node never becomes Ready", lab.BadReleaseRollsBack},
	}
	var done []*e2e.Step
	for _, s := range steps {
		say("%s", s.intro)
		step, err := s.run(ctx)
		if step != nil {
			done = append(done, step)
		}
		if err != nil {
			table(out, done)
			return err
		}
	}
	say("Done: the device updated itself, refused to keep a release that did not come up, and is back on 1.1.0")
	table(out, done)
	return nil
}

func table(out io.Writer, steps []*e2e.Step) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "RELEASE\tSLOT\tRESULT\tTIME")
	for _, s := range steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", s.Release, s.Slot, s.Result, s.Took.Round(time.Second))
	}
	tw.Flush()
}

// consoleFilter shows the device's console, leaving out the machine-read
// lines of its e2e reporter.
type consoleFilter struct {
	w    io.Writer
	line []byte
}

func (c *consoleFilter) Write(p []byte) (int, error) {
	for _, b := range p {
		c.line = append(c.line, b)
		if b != '\n' {
			continue
		}
		if !bytes.HasPrefix(bytes.TrimLeft(c.line, "\r"), []byte("cairn-e2e ")) {
			if _, err := c.w.Write(c.line); err != nil {
				return 0, err
			}
		}
		c.line = c.line[:0]
	}
	return len(p), nil
}
