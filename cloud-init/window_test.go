package cloudinit

import (
	"regexp"
	"testing"
	"time"
)

func TestRebootWindowTakesWeekdays(t *testing.T) {
	pattern := regexp.MustCompile(Window{}.jsonSchema()["pattern"].(string))
	for _, tc := range []struct {
		in, out    string
		days       []time.Weekday
		start, end time.Duration
	}{
		{"02:00-04:30", "02:00-04:30", nil, 2 * time.Hour, 4*time.Hour + 30*time.Minute},
		{"Sat 02:00-04:00", "Sat 02:00-04:00", []time.Weekday{time.Saturday}, 2 * time.Hour, 4 * time.Hour},
		{"mon,Thu 23:30-00:30", "Mon,Thu 23:30-00:30", []time.Weekday{time.Monday, time.Thursday}, 23*time.Hour + 30*time.Minute, 30 * time.Minute},
	} {
		doc := "#cloud-config\ncairn:\n  update:\n    reboot_policy: window\n    reboot_window: \"" + tc.in + "\"\n"
		ud, err := ParseUserData("user-data", []byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		w := ud.Cairn.Update.RebootWindow
		var want [7]bool
		for _, d := range tc.days {
			want[d] = true
		}
		if w.Days != want || w.Start != tc.start || w.End != tc.end || w.String() != tc.out {
			t.Errorf("%s: got %+v (%s)", tc.in, *w, w)
		}
		if !pattern.MatchString(tc.in) {
			t.Errorf("%s: the JSON schema's pattern refuses what the parser takes", tc.in)
		}
	}
	for _, bad := range []string{"Sa 02:00-04:00", "Sat", "Sat Sun 02:00-04:00", "SAT 02:00-04:00", "02:00-02:00"} {
		doc := "#cloud-config\ncairn:\n  update:\n    reboot_policy: window\n    reboot_window: \"" + bad + "\"\n"
		if _, err := ParseUserData("user-data", []byte(doc)); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if pattern.MatchString(bad) && bad != "02:00-02:00" {
			t.Errorf("%q: the JSON schema's pattern accepts what the parser refuses", bad)
		}
	}
}
