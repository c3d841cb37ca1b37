package update

import (
	"testing"
	"time"
)

func TestRebootWindowTable(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("Mon 2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		window, now string
		inside      bool
		next        string
	}{
		{"Sat 02:00-04:00", "Sat 2026-06-06 02:00", true, "Sat 2026-06-06 02:00"},
		{"Sat 02:00-04:00", "Sat 2026-06-06 03:59", true, "Sat 2026-06-06 03:59"},
		{"Sat 02:00-04:00", "Sat 2026-06-06 04:00", false, "Sat 2026-06-13 02:00"},
		{"Sat 02:00-04:00", "Fri 2026-06-05 02:30", false, "Sat 2026-06-06 02:00"},
		{"Sat 02:00-04:00", "Sun 2026-06-07 02:30", false, "Sat 2026-06-13 02:00"},
		{"02:00-04:00", "Tue 2026-06-02 05:00", false, "Wed 2026-06-03 02:00"},
		{"02:00-04:00", "Tue 2026-06-02 01:59", false, "Tue 2026-06-02 02:00"},
		// Crossing midnight: the window belongs to the day it starts on.
		{"Sat 23:00-01:00", "Sat 2026-06-06 23:30", true, "Sat 2026-06-06 23:30"},
		{"Sat 23:00-01:00", "Sun 2026-06-07 00:30", true, "Sun 2026-06-07 00:30"},
		{"Sat 23:00-01:00", "Sun 2026-06-07 01:00", false, "Sat 2026-06-13 23:00"},
		{"Sat 23:00-01:00", "Sat 2026-06-06 00:30", false, "Sat 2026-06-06 23:00"},
		{"23:00-01:00", "Wed 2026-06-03 00:59", true, "Wed 2026-06-03 00:59"},
		{"Mon,Thu 22:00-06:00", "Fri 2026-06-05 05:00", true, "Fri 2026-06-05 05:00"},
		{"Mon,Thu 22:00-06:00", "Fri 2026-06-05 07:00", false, "Mon 2026-06-08 22:00"},
		// Daylight saving starts at 02:00 on 29 March 2026 in Berlin: the
		// window keeps its wall-clock times.
		{"Sun 03:00-04:00", "Sun 2026-03-29 01:30", false, "Sun 2026-03-29 03:00"},
		{"Sun 03:00-04:00", "Sun 2026-03-29 03:30", true, "Sun 2026-03-29 03:30"},
	} {
		w, err := ParseWindow(c.window)
		if err != nil {
			t.Fatalf("%s: %v", c.window, err)
		}
		now := at(c.now)
		if got := w.Contains(now); got != c.inside {
			t.Errorf("%s at %s: inside %v, want %v", c.window, c.now, got, c.inside)
		}
		p := RebootPolicy{Mode: RebootWindow, Window: w, Location: berlin}
		next, ok := p.Next(now.UTC())
		if !ok || !next.Equal(at(c.next)) {
			t.Errorf("%s at %s: next reboot %s, want %s", c.window, c.now, next.In(berlin).Format("Mon 2006-01-02 15:04"), c.next)
		}
	}
}

func TestRebootPolicies(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if at, ok := (RebootPolicy{}).Next(now); !ok || !at.Equal(now) {
		t.Errorf("default policy: %v %v, want now", at, ok)
	}
	if at, ok := (RebootPolicy{Mode: RebootImmediate}).Next(now); !ok || !at.Equal(now) {
		t.Errorf("immediate: %v %v, want now", at, ok)
	}
	if _, ok := (RebootPolicy{Mode: RebootManual}).Next(now); ok {
		t.Error("manual policy scheduled a reboot")
	}
	if err := (RebootPolicy{Mode: "sometimes"}).Validate(); err == nil {
		t.Error("unknown policy accepted")
	}
}

func TestParseWindowRefusesNonsense(t *testing.T) {
	for _, s := range []string{"", "Sat", "Saturday 02:00-04:00", "Sat 2:00-04:00", "02:00-02:00",
		"25:00-26:00", "02:00", "Sat Sun 02:00-03:00", "Xyz 01:00-02:00"} {
		if w, err := ParseWindow(s); err == nil {
			t.Errorf("ParseWindow(%q) = %v, want an error", s, w)
		}
	}
	w, err := ParseWindow("sat,SUN 02:00-04:30")
	if err != nil || w.String() != "Sun,Sat 02:00-04:30" {
		t.Errorf("round trip: %v, %v", w, err)
	}
}
