package k3s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-edge/cairn/internal/atomicfile"

	"golang.org/x/sys/unix"
)

// ChildRunner runs k3s as a child process of the agent, for systems where
// systemd is not the service manager. k3s gets its own session, so it
// survives the agent; its pid and start time are kept in a state file so the
// next agent adopts it. While supervised, a k3s that exits by itself is
// started again after a backoff.
type ChildRunner struct {
	cmd   Command
	state string // state file on /var
	log   string // k3s's stdout and stderr, appended

	// Backoff between restarts: doubled after each exit that came sooner
	// than MaxBackoff after the start, reset otherwise.
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration

	mu       sync.Mutex
	cur      *child
	stop     chan struct{} // closed to end supervision
	done     chan struct{} // closed when supervision ended
	restarts int
	phase    string
}

// child is one running k3s process.
type child struct {
	pid    int
	start  uint64 // start time from /proc/PID/stat, tells a reused pid apart
	since  time.Time
	pidfd  *os.File
	cmd    *exec.Cmd     // nil when adopted: another agent started it
	exited chan struct{} // closed when the process has exited
}

// childState is the state file: which process is our k3s.
type childState struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Path      string `json:"path"`
}

// NewChildRunner runs cmd, recording the process in stateFile and appending
// its output to logFile.
func NewChildRunner(cmd Command, stateFile, logFile string) *ChildRunner {
	return &ChildRunner{cmd: cmd, state: stateFile, log: logFile,
		MinBackoff: time.Second, MaxBackoff: time.Minute, StopTimeout: 90 * time.Second,
		phase: "stopped"}
}

// Start adopts the k3s recorded in the state file if it still runs, or
// starts one, and supervises it until Stop or Detach.
func (r *ChildRunner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		return nil
	}
	c, err := r.adopt()
	if err != nil {
		return err
	}
	if c == nil {
		if c, err = r.spawn(); err != nil {
			r.phase = "failed"
			return err
		}
	}
	r.cur, r.phase = c, "running"
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.supervise(r.stop, r.done)
	return nil
}

// adopt returns the running k3s named by the state file, or nil.
func (r *ChildRunner) adopt() (*child, error) {
	data, err := os.ReadFile(r.state)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("k3s runner state %s: %w", r.state, err)
	}
	var st childState
	if err := json.Unmarshal(data, &st); err != nil || st.PID <= 0 {
		// A torn or foreign file must not keep k3s from starting.
		return nil, nil
	}
	if start, alive := procStart(st.PID); !alive || start != st.StartTime {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(st.PID, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, nil
	}
	// Checked again with the pidfd held: the pid cannot be reused from here on.
	if start, alive := procStart(st.PID); !alive || start != st.StartTime {
		unix.Close(fd)
		return nil, nil
	}
	c := &child{pid: st.PID, start: st.StartTime, since: time.Now(),
		pidfd: os.NewFile(uintptr(fd), "pidfd"), exited: make(chan struct{})}
	go c.wait()
	return c, nil
}

func (r *ChildRunner) spawn() (*child, error) {
	logf, err := os.OpenFile(r.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("k3s log %s: %w", r.log, err)
	}
	defer logf.Close()
	cmd := exec.Command(r.cmd.Path, r.cmd.Args...)
	cmd.Env = append(os.Environ(), r.cmd.Env...)
	// A file, not a pipe: k3s must not get SIGPIPE when the agent is gone.
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session and process group: a signal to the agent's group or the
	// agent's death does not reach k3s.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("k3s start %s: %w", r.cmd.Path, err)
	}
	pid := cmd.Process.Pid
	start, _ := procStart(pid)
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("k3s pid %d: pidfd_open: %w", pid, err)
	}
	c := &child{pid: pid, start: start, since: time.Now(), cmd: cmd,
		pidfd: os.NewFile(uintptr(fd), "pidfd"), exited: make(chan struct{})}
	go c.wait()
	st, _ := json.Marshal(childState{PID: pid, StartTime: start, Path: r.cmd.Path})
	if err := atomicfile.Write(r.state, append(st, '\n'), 0o644); err != nil {
		return c, err
	}
	return c, nil
}

// wait closes c.exited when the process exits. It returns early, leaving
// exited open, when the pidfd is closed by Detach.
func (c *child) wait() {
	rc, err := c.pidfd.SyscallConn()
	if err != nil {
		return
	}
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	})
	if err != nil {
		return
	}
	if c.cmd != nil {
		c.cmd.Wait()
	}
	close(c.exited)
}

// procStart reads a process's start time (clock ticks after boot, field 22
// of /proc/PID/stat). A zombie counts as not alive.
func procStart(pid int) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces and parentheses; fields follow the last ')'.
	i := len(data) - 1
	for i >= 0 && data[i] != ')' {
		i--
	}
	var state byte
	var start uint64
	var skip int64
	_, err = fmt.Sscanf(string(data[i+1:]), " %c %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d",
		&state, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &start)
	if err != nil || state == 'Z' || state == 'X' {
		return 0, false
	}
	return start, true
}
