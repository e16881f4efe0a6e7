package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"someday":           `"someday" is not a day`,
		"mon-xyz":           `"xyz" is not a day`,
		"mon 22:00":         "want HH:MM-HH:MM",
		"mon 25:00-07:00":   `"25:00" is not a time of day`,
		"mon 10:00-10:00":   "is empty",
		"mon 10:00-11:00 x": "want DAYS",
		"mon 07:60-08:00":   `"07:60" is not a time of day`,
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	if s, err := Parse("  "); err != nil || !s.Always() {
		t.Errorf("empty schedule: %v %v", s, err)
	}
}

func TestOpen(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("mon-fri 22:00-07:00, sat-sun")
	if err != nil {
		t.Fatal(err)
	}
	at := func(v string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", v, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		when string
		open bool
	}{
		{"2026-11-30 21:59", false}, // Monday evening, just before
		{"2026-11-30 22:00", true},  // the window opens
		{"2026-12-01 06:59", true},  // Tuesday morning: Monday's night goes on
		{"2026-12-01 07:00", false}, // it closes
		{"2026-12-01 12:00", false},
		{"2026-12-04 23:30", true},  // Friday night
		{"2026-12-05 12:00", true},  // Saturday all day
		{"2026-12-06 23:59", true},  // Sunday is a whole day...
		{"2026-12-07 00:00", false}, // ...until midnight: Monday has no morning part
		{"2026-12-07 06:00", false},
	} {
		if got := s.Open(at(c.when), berlin); got != c.open {
			t.Errorf("%s Berlin: open %v, want %v", c.when, got, c.open)
		}
	}
	// The same instant is read in the agent's zone: 21:30 UTC on a Monday
	// is 22:30 in Berlin (open) but 21:30 in London (closed).
	london, _ := time.LoadLocation("Europe/London")
	instant := time.Date(2026, 11, 30, 21, 30, 0, 0, time.UTC)
	if !s.Open(instant, berlin) || s.Open(instant, london) {
		t.Errorf("time zones: Berlin %v, London %v", s.Open(instant, berlin), s.Open(instant, london))
	}
	wrap, _ := Parse("fri-mon 09:00-17:00")
	if !wrap.Open(at("2026-12-07 10:00"), berlin) || wrap.Open(at("2026-12-08 10:00"), berlin) {
		t.Error("a day range across the week's end")
	}
}

// Windows are wall-clock hours: across the spring-forward night (Berlin,
// 2026-03-29, 02:00 → 03:00) a 01:00-04:00 window holds two real hours,
// and on the autumn night (2026-10-25, 03:00 → 02:00) four.
func TestDaylightSaving(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	s, err := Parse("sun 01:00-04:00")
	if err != nil {
		t.Fatal(err)
	}
	count := func(day time.Time) time.Duration {
		var open time.Duration
		for tm := day; tm.Before(day.Add(26 * time.Hour)); tm = tm.Add(time.Minute) {
			if s.Open(tm, berlin) {
				open += time.Minute
			}
		}
		return open
	}
	if got := count(time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC)); got != 2*time.Hour {
		t.Errorf("spring: open %s, want 2h", got)
	}
	if got := count(time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC)); got != 4*time.Hour {
		t.Errorf("autumn: open %s, want 4h", got)
	}
	if got := count(time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)); got != 3*time.Hour {
		t.Errorf("an ordinary Sunday: open %s, want 3h", got)
	}
}
