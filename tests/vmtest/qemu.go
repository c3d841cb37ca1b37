package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/tests/vmtest/internal/plan"
)

// boot runs QEMU under TCG (nested KVM does not work on the build
// machines) with the serial console on stdout, passes each console line to
// logf and returns the exit code the guest's /init reports. One CPU: on a
// busy two-core machine it boots and tests as fast as two, and leaves the
// other core to other test packages.
func boot(ctx context.Context, qemu, kernel, initrd string, memMiB int, logf func(string)) (int, error) {
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", strconv.Itoa(memMiB), "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		// panic=-1 turns a kernel panic into a reboot, which -no-reboot
		// turns into QEMU exiting.
		"-append", "console=ttyS0 quiet panic=-1 rdinit=/init")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("qemu: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("qemu: %w", err)
	}
	code, found, detail := -1, false, ""
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := consoleText(sc.Text())
		logf(line)
		if i := strings.Index(line, plan.ResultPrefix); i >= 0 && !found {
			code, detail, found = parseResult(line[i+len(plan.ResultPrefix):])
			if found {
				// The guest powers itself off; should it hang instead,
				// its work is done anyway.
				stop := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
				defer stop.Stop()
			}
		}
	}
	waitErr := cmd.Wait()
	switch {
	case !found && ctx.Err() != nil:
		return -1, fmt.Errorf("qemu: %w: %w", ErrNoResult, ctx.Err())
	case !found:
		return -1, fmt.Errorf("qemu: %w (qemu: %v)", ErrNoResult, waitErr)
	case detail != "":
		return code, fmt.Errorf("guest setup: %s: %w", detail, ErrNoResult)
	}
	return code, nil
}

// escapes are the terminal control sequences firmware writes to the
// console, noise in a test log.
var escapes = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])`)

func consoleText(s string) string {
	return strings.TrimRight(escapes.ReplaceAllString(s, ""), "\r")
}

// parseResult reads "exit=N[ reason]" after the result prefix.
func parseResult(s string) (code int, detail string, ok bool) {
	s, ok = strings.CutPrefix(strings.TrimSpace(s), "exit=")
	if !ok {
		return -1, "", false
	}
	num, detail, _ := strings.Cut(s, " ")
	code, err := strconv.Atoi(num)
	if err != nil {
		return -1, "", false
	}
	return code, detail, true
}
