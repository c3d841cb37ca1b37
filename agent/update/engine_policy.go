package update

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reboot policies: when a device that installed a release reboots into it.
const (
	RebootImmediate = "immediate" // as soon as the trial is set
	RebootWindow    = "window"    // at the next maintenance window
	RebootManual    = "manual"    // when told (cairn-agent update apply)
)

// RebootPolicy says when to reboot into an installed release. The device
// keeps serving until then.
type RebootPolicy struct {
	Mode   string // RebootImmediate (also ""), RebootWindow or RebootManual
	Window Window // for RebootWindow
	// Location is the time zone the window is in; nil: time.Local.
	Location *time.Location
}

// Next returns when the device may reboot, at now or later; ok is false
// under the manual policy, which never reboots by itself.
func (p RebootPolicy) Next(now time.Time) (at time.Time, ok bool) {
	switch p.Mode {
	case RebootManual:
		return time.Time{}, false
	case RebootWindow:
		loc := p.Location
		if loc == nil {
			loc = time.Local
		}
		return p.Window.Next(now.In(loc)), true
	}
	return now, true
}

// Validate checks the mode and, for the window policy, the window.
func (p RebootPolicy) Validate() error {
	switch p.Mode {
	case "", RebootImmediate, RebootManual:
		return nil
	case RebootWindow:
		if p.Window.Start == p.Window.End {
			return fmt.Errorf("reboot policy window: empty window %s", p.Window)
		}
		return nil
	}
	return fmt.Errorf("reboot policy %q: want immediate, window or manual", p.Mode)
}

// Window is a maintenance window in local time: on some weekdays (none
// named: every day), from Start to End after midnight. A window whose End
// is before its Start crosses midnight and belongs to the day it starts on:
// "Sat 23:00-01:00" runs from Saturday 23:00 to Sunday 01:00.
type Window struct {
	Days       [7]bool // indexed by time.Weekday; all false: every day
	Start, End time.Duration
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow reads "HH:MM-HH:MM", optionally after weekdays:
// "Sat 02:00-04:00", "Mon,Thu 23:30-00:30".
func ParseWindow(s string) (Window, error) {
	var w Window
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return w, fmt.Errorf("window %q: want [DAYS] HH:MM-HH:MM, like Sat 02:00-04:00", s)
	}
	if len(fields) == 2 {
		for _, d := range strings.Split(fields[0], ",") {
			wd, ok := weekdays[strings.ToLower(d)]
			if !ok || len(d) != 3 {
				return w, fmt.Errorf("window %q: %q is not a weekday (Mon, Tue, ... Sun)", s, d)
			}
			w.Days[wd] = true
		}
	}
	from, to, ok := strings.Cut(fields[len(fields)-1], "-")
	var err1, err2 error
	w.Start, err1 = clockTime(from)
	w.End, err2 = clockTime(to)
	if !ok || err1 != nil || err2 != nil {
		return w, fmt.Errorf("window %q: want HH:MM-HH:MM, like 02:00-04:00", s)
	}
	if w.Start == w.End {
		return w, fmt.Errorf("window %q is empty: start equals end", s)
	}
	return w, nil
}

func clockTime(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) != 2 || len(m) != 2 || hh > 23 || mm > 59 || hh < 0 || mm < 0 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func (w Window) String() string {
	var days []string
	for d, on := range w.Days {
		if on {
			days = append(days, time.Weekday(d).String()[:3])
		}
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	span := f(w.Start) + "-" + f(w.End)
	if len(days) == 0 {
		return span
	}
	return strings.Join(days, ",") + " " + span
}

func (w Window) everyDay() bool { return w.Days == [7]bool{} }

func (w Window) on(d time.Weekday) bool { return w.everyDay() || w.Days[d] }

// Contains reports whether t (in the window's time zone) is inside the
// window. Clock time is read from t's fields, so days with a DST change
// keep their wall-clock window.
func (w Window) Contains(t time.Time) bool {
	tod := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	day := t.Weekday()
	if w.Start < w.End {
		return w.on(day) && tod >= w.Start && tod < w.End
	}
	return (w.on(day) && tod >= w.Start) || (w.on((day+6)%7) && tod < w.End)
}

// Next returns t when it is inside the window, else the next start of it.
func (w Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	h, m := int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute)
	for d := 0; d <= 7; d++ {
		start := time.Date(t.Year(), t.Month(), t.Day()+d, h, m, 0, 0, t.Location())
		if start.After(t) && w.on(start.Weekday()) {
			return start
		}
	}
	panic("unreachable: a window opens at least once a week")
}
