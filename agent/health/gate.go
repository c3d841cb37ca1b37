// Package health decides whether a boot is good: it runs the health gate's
// checks until every one has passed or the deadline has gone by.
package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultDeadline is how long a new boot has to become healthy.
const DefaultDeadline = 10 * time.Minute

// DefaultInterval is the pause between two rounds of the failing checks.
const DefaultInterval = 5 * time.Second

// ErrUnhealthy is wrapped by the error of a failed verdict.
var ErrUnhealthy = errors.New("health gate failed")

// Check is one condition a boot must reach. Run returns nil once it holds,
// or why it does not hold yet.
type Check interface {
	Name() string
	Run(ctx context.Context) error
}

// Func turns a function into a Check.
func Func(name string, run func(ctx context.Context) error) Check { return funcCheck{name, run} }

type funcCheck struct {
	name string
	run  func(ctx context.Context) error
}

func (c funcCheck) Name() string                  { return c.name }
func (c funcCheck) Run(ctx context.Context) error { return c.run(ctx) }

// Gate is the list of checks a boot must pass before its deadline.
type Gate struct {
	Checks   []Check
	Deadline time.Duration // 0: DefaultDeadline
	Interval time.Duration // 0: DefaultInterval
}

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Error  string `json:"error,omitempty"` // the last failure, while not passed
}

// Verdict is what the gate decided.
type Verdict struct {
	Passed  bool          `json:"passed"`
	Reason  string        `json:"reason,omitempty"` // why it failed, for people and the update state
	Elapsed time.Duration `json:"elapsed"`
	Results []Result      `json:"results"`
}

// Err is nil for a passed verdict; otherwise an error that reads as the
// reason and wraps ErrUnhealthy.
func (v Verdict) Err() error {
	if v.Passed {
		return nil
	}
	return unhealthy(v.Reason)
}

type unhealthy string

func (u unhealthy) Error() string { return string(u) }
func (u unhealthy) Unwrap() error { return ErrUnhealthy }

// Run runs the checks in rounds until each has passed once, or the deadline
// (or ctx) ends the wait. A check that passed is not run again: the gate
// asks whether the boot came up, not whether it stays up.
func (g *Gate) Run(ctx context.Context) Verdict {
	deadline := g.Deadline
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	interval := g.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	results := make([]Result, len(g.Checks))
	for i, c := range g.Checks {
		results[i].Name = c.Name()
	}
	for {
		pending := 0
		for i, c := range g.Checks {
			if results[i].Passed {
				continue
			}
			if err := c.Run(ctx); err != nil {
				// An attempt the deadline cut short says nothing new: keep
				// the check's last real failure for the verdict.
				if ctx.Err() == nil || results[i].Error == "" {
					results[i].Error = err.Error()
				}
				pending++
				continue
			}
			results[i] = Result{Name: c.Name(), Passed: true}
		}
		if pending == 0 {
			return Verdict{Passed: true, Elapsed: time.Since(start), Results: results}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return failed(deadline, ctx, results, time.Since(start))
		case <-t.C:
		}
	}
}

// failed builds the verdict of a gate that ran out of time, naming every
// check that had not passed and its last error.
func failed(deadline time.Duration, ctx context.Context, results []Result, elapsed time.Duration) Verdict {
	var why []string
	for _, r := range results {
		if !r.Passed {
			why = append(why, fmt.Sprintf("check %s: %s", r.Name, r.Error))
		}
	}
	what := fmt.Sprintf("%s after %s", ErrUnhealthy, shortDuration(deadline))
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		what = "health gate interrupted"
	}
	return Verdict{
		Reason:  what + ": " + strings.Join(why, "; "),
		Elapsed: elapsed,
		Results: results,
	}
}

// shortDuration prints 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
