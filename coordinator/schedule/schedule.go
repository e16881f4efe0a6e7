// Package schedule reads an agent's working hours, as Flamenco's sleep
// schedules do: "mon-fri 22:00-07:00, sat-sun" is weekday nights and whole
// weekends. Times are wall-clock times in the agent's time zone, so a
// window keeps its hours across daylight-saving changes.
package schedule

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Schedule is a set of weekly windows; the empty one is always open.
type Schedule struct {
	windows []window
	text    string
}

type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight; end <= start crosses midnight
	allDay     bool
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// Parse reads entries separated by commas: days (mon, mon-fri, fri-mon,
// daily) optionally followed by HH:MM-HH:MM. A range ending at or before
// its start runs past midnight into the next day.
func Parse(s string) (Schedule, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Schedule{}, nil
	}
	var sc Schedule
	for _, entry := range strings.Split(text, ",") {
		f := strings.Fields(strings.ToLower(entry))
		if len(f) == 0 || len(f) > 2 {
			return Schedule{}, fmt.Errorf("%q: want DAYS [HH:MM-HH:MM], e.g. \"mon-fri 22:00-07:00\"", strings.TrimSpace(entry))
		}
		w, err := parseDays(f[0])
		if err != nil {
			return Schedule{}, err
		}
		if len(f) == 1 {
			w.allDay = true
		} else if w.start, w.end, err = parseRange(f[1]); err != nil {
			return Schedule{}, err
		}
		sc.windows = append(sc.windows, w)
	}
	sc.text = text
	return sc, nil
}

func parseDays(s string) (window, error) {
	var w window
	if s == "daily" {
		for i := range w.days {
			w.days[i] = true
		}
		return w, nil
	}
	from, to, isRange := strings.Cut(s, "-")
	a, ok := dayNames[from]
	if !ok {
		return w, fmt.Errorf("%q is not a day (mon, tue, wed, thu, fri, sat, sun or daily)", from)
	}
	b := a
	if isRange {
		if b, ok = dayNames[to]; !ok {
			return w, fmt.Errorf("%q is not a day (mon, tue, wed, thu, fri, sat, sun)", to)
		}
	}
	for d := a; ; d = (d + 1) % 7 {
		w.days[d] = true
		if d == b {
			break
		}
	}
	return w, nil
}

func parseRange(s string) (int, int, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	a, err := parseClock(from)
	if err != nil {
		return 0, 0, err
	}
	b, err := parseClock(to)
	if err != nil {
		return 0, 0, err
	}
	if a == b {
		return 0, 0, fmt.Errorf("%q is empty: use the days alone for a whole day", s)
	}
	return a, b, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, fmt.Errorf("%q is not a time of day (HH:MM, 00:00 to 24:00)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// String is the schedule as written.
func (s Schedule) String() string { return s.text }

// Always reports whether the schedule never closes.
func (s Schedule) Always() bool { return len(s.windows) == 0 }

// Open reports whether t falls in a window, read in loc.
func (s Schedule) Open(t time.Time, loc *time.Location) bool {
	if s.Always() {
		return true
	}
	lt := t.In(loc)
	day, min := lt.Weekday(), lt.Hour()*60+lt.Minute()
	yesterday := (day + 6) % 7
	for _, w := range s.windows {
		switch {
		case w.allDay:
			if w.days[day] {
				return true
			}
		case w.start < w.end:
			if w.days[day] && min >= w.start && min < w.end {
				return true
			}
		default: // crosses midnight: the evening part, then the morning after
			if w.days[day] && min >= w.start || w.days[yesterday] && min < w.end {
				return true
			}
		}
	}
	return false
}

// zones caches time zones by name (loading one reads the system's tzdata).
var zones sync.Map

// Zone is the named IANA time zone; an empty or unknown name is UTC.
func Zone(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = time.UTC
	}
	zones.Store(name, l)
	return l
}

// Allows reports whether schedule text lets an agent in time zone tz work
// at t. A schedule that does not parse (they are checked when set) never
// stops a farm.
func Allows(text, tz string, t time.Time) bool {
	if text == "" {
		return true
	}
	// Every grant asks: parse each schedule once.
	v, ok := parsed.Load(text)
	if !ok {
		sc, err := Parse(text)
		if err != nil {
			return true
		}
		v, _ = parsed.LoadOrStore(text, sc)
	}
	return v.(Schedule).Open(t, Zone(tz))
}

// parsed caches schedules by text (an operator sets a handful).
var parsed sync.Map
