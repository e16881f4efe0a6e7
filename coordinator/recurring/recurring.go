// Package recurring is the pure logic of montage schedules: their cron
// slots (which are due, which one a time falls in), and which library
// highlights a slot's montages hold, grouped, filtered and ordered. The
// leader reads the state, asks this package, and proposes the fire.
package recurring

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Groupings of a slot's highlights into montages.
const (
	PerStreamer    = "per-streamer"
	TopPerStreamer = "top-per-streamer"
	All            = "all"
)

// Orders of a montage's highlights.
const (
	Chronological = "chronological"
	ByScore       = "score"
	Shuffle       = "shuffle"
)

// Catch-up policies after downtime.
const (
	CatchUpAll  = "all"
	CatchUpLast = "last"
)

// MaxMissed bounds the missed slots one catch-up fires (the latest ones).
const MaxMissed = 100

// FieldError names the field of a schedule that is wrong.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func bad(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether s may name a schedule or a feed: 1-64
// letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Cron parses a schedule's five-field expression (or @daily, @weekly, …)
// in its time zone ("" is UTC). @every is refused: its slots would depend
// on when the coordinator started, not on the calendar.
func Cron(expr, tz string) (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, nil, bad("tz", "unknown time zone %q (use an IANA name like Europe/Berlin)", tz)
	}
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "@every") || strings.Contains(e, "TZ=") {
		return nil, nil, bad("cron", "%q: use five fields or @hourly/@daily/@weekly/@monthly, and --tz for the zone", expr)
	}
	s, err := cron.ParseStandard(e)
	if err != nil {
		return nil, nil, bad("cron", "%q: %v", expr, err)
	}
	return s, loc, nil
}

// Check says what is wrong with a schedule before it is added.
func Check(m *fsm.MontageSchedule) error {
	if !nameRE.MatchString(m.Name) {
		return bad("name", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", m.Name)
	}
	if _, _, err := Cron(m.Cron, m.TimeZone); err != nil {
		return err
	}
	if m.Window <= 0 || m.Window > 366*24*time.Hour {
		return bad("window", "must be between 1s and 366d, got %s", m.Window)
	}
	switch m.Group {
	case PerStreamer, TopPerStreamer, All:
	default:
		return bad("group", "must be per-streamer, top-per-streamer or all, got %q", m.Group)
	}
	switch m.Order {
	case "", Chronological, ByScore, Shuffle:
	default:
		return bad("order", "must be chronological, score or shuffle, got %q", m.Order)
	}
	switch m.CatchUp {
	case "", CatchUpAll, CatchUpLast:
	default:
		return bad("catch_up", "must be all or last, got %q", m.CatchUp)
	}
	if m.MaxHighlights < 0 || m.MaxHighlights > spec.MaxHighlights {
		return bad("max_highlights", "must be between 0 (no limit) and %d", spec.MaxHighlights)
	}
	if len(m.NameTemplate) > 200 {
		return bad("name_template", "must be at most 200 bytes")
	}
	if len(m.Profile) > 0 {
		p := &montagev1.RenderProfile{}
		if err := proto.Unmarshal(m.Profile, p); err != nil {
			return bad("profile", "does not decode: %v", err)
		}
		if _, err := spec.ResolveProfile(p); err != nil {
			return bad("profile", "%v", err)
		}
	}
	return nil
}

// Due lists the slots of m after its last fired one (or its creation) up
// to now, oldest first, at most MaxMissed (the latest). Under catch-up
// "last" only the latest is returned, with how many were passed over.
func Due(m *fsm.MontageSchedule, now time.Time) (slots []time.Time, skipped int, err error) {
	s, loc, err := Cron(m.Cron, m.TimeZone)
	if err != nil {
		return nil, 0, err
	}
	from := m.LastSlot
	if from.IsZero() || from.Before(m.CreatedAt) {
		from = m.CreatedAt
	}
	for t := s.Next(from.In(loc)); !t.After(now); t = s.Next(t) {
		slots = append(slots, t.UTC())
		if len(slots) > MaxMissed {
			slots = slots[1:]
			skipped++
		}
	}
	if m.CatchUp == CatchUpLast && len(slots) > 1 {
		skipped += len(slots) - 1
		slots = slots[len(slots)-1:]
	}
	return slots, skipped, nil
}

// SlotAt is the latest slot of m at or before t.
func SlotAt(m *fsm.MontageSchedule, t time.Time) (time.Time, error) {
	s, loc, err := Cron(m.Cron, m.TimeZone)
	if err != nil {
		return time.Time{}, err
	}
	// Look back further and further: a minutely cron needs an hour, a
	// yearly one a year.
	for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
		var last time.Time
		for x := s.Next(t.Add(-back).In(loc)); !x.After(t) && !x.IsZero(); x = s.Next(x) {
			last = x
		}
		if !last.IsZero() {
			return last.UTC(), nil
		}
	}
	return time.Time{}, bad("at", "%s: the schedule had no slot in the five years before", t.UTC().Format(time.RFC3339))
}

// Group is one montage of a slot.
type Group struct {
	Name       string
	Streamers  []string
	Highlights []*fsm.Highlight
}

// Library yields the library's highlights of a streamer ("" for all).
type Library func(streamer string, f func(*fsm.Highlight))

// When is a highlight's place in time: its stream's date (midnight in the
// schedule's zone) or, without one, when it was added.
func When(h *fsm.Highlight, loc *time.Location) time.Time {
	if h.Date != "" {
		if d, err := time.ParseInLocation(time.DateOnly, h.Date, loc); err == nil {
			return d
		}
	}
	return h.AddedAt
}

// Window is the span a slot covers: the whole days before the slot's day
// (in the schedule's zone) when the window is whole days, so that a
// Monday 09:00 slot of 7d covers last Monday to Sunday, and stream dates
// fall in exactly one slot; otherwise [slot-window, slot).
func Window(m *fsm.MontageSchedule, slot time.Time) (from, to time.Time) {
	if m.Window%(24*time.Hour) != 0 {
		return slot.Add(-m.Window), slot
	}
	loc, err := time.LoadLocation(m.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	l := slot.In(loc)
	to = time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	return to.AddDate(0, 0, -int(m.Window/(24*time.Hour))), to
}

// Select makes the montages of one slot.
func Select(m *fsm.MontageSchedule, slot time.Time, lib Library) []Group {
	loc, err := time.LoadLocation(m.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	from, to := Window(m, slot)
	keep := func(h *fsm.Highlight) bool {
		w := When(h, loc)
		if w.Before(from) || !w.Before(to) || h.Score < m.MinScore {
			return false
		}
		if len(m.Tags) == 0 {
			return true
		}
		for _, t := range m.Tags {
			if slices.Contains(h.Tags, t) {
				return true
			}
		}
		return false
	}
	byStreamer := map[string][]*fsm.Highlight{}
	collect := func(h *fsm.Highlight) {
		if keep(h) {
			byStreamer[h.Streamer] = append(byStreamer[h.Streamer], h)
		}
	}
	if len(m.Streamers) > 0 {
		for _, s := range m.Streamers {
			lib(s, collect)
		}
	} else {
		lib("", collect)
	}
	streamers := make([]string, 0, len(byStreamer))
	for s := range byStreamer {
		streamers = append(streamers, s)
	}
	slices.Sort(streamers)
	earliest := func(a, b *fsm.Highlight) int {
		return cmp.Or(When(a, loc).Compare(When(b, loc)), cmp.Compare(a.At, b.At), strings.Compare(a.URL, b.URL))
	}
	best := func(a, b *fsm.Highlight) int { return cmp.Or(cmp.Compare(b.Score, a.Score), earliest(a, b)) }
	order := func(hs []*fsm.Highlight, def string, salt string) []*fsm.Highlight {
		if m.MaxHighlights > 0 && len(hs) > m.MaxHighlights {
			slices.SortFunc(hs, best)
			hs = hs[:m.MaxHighlights]
		}
		o := cmp.Or(m.Order, def)
		switch o {
		case ByScore:
			slices.SortFunc(hs, best)
		default:
			slices.SortFunc(hs, earliest)
		}
		if o == Shuffle {
			shuffle(hs, seedOf(m, slot, salt))
		}
		return hs
	}
	var groups []Group
	switch m.Group {
	case PerStreamer:
		for _, s := range streamers {
			groups = append(groups, Group{Streamers: []string{s}, Highlights: order(byStreamer[s], Chronological, s)})
		}
	case TopPerStreamer:
		var top []*fsm.Highlight
		for _, s := range streamers {
			hs := byStreamer[s]
			slices.SortFunc(hs, best)
			top = append(top, hs[0])
		}
		if len(top) > 0 {
			groups = append(groups, Group{Streamers: streamers, Highlights: order(top, Shuffle, "")})
		}
	case All:
		var all []*fsm.Highlight
		for _, s := range streamers {
			all = append(all, byStreamer[s]...)
		}
		if len(all) > 0 {
			groups = append(groups, Group{Streamers: streamers, Highlights: order(all, Chronological, "")})
		}
	}
	for i := range groups {
		groups[i].Name = Name(m, slot, groups[i].Streamers, loc)
	}
	return groups
}

// seedOf is the shuffle's seed: the schedule's own, or one derived from its
// name and the slot (and a streamer's name for per-streamer montages), so
// a slot's order is the same on every leader and differs between slots.
func seedOf(m *fsm.MontageSchedule, slot time.Time, salt string) uint64 {
	if m.HasSeed {
		return uint64(m.Seed)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", m.Name, slot.UTC().Format(time.RFC3339), salt)
	return h.Sum64()
}

// shuffle is Fisher-Yates over splitmix64: written out here, so that the
// order of a seed never changes with the Go release.
func shuffle(hs []*fsm.Highlight, seed uint64) {
	x := seed
	for i := len(hs) - 1; i > 0; i-- {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		j := int(z % uint64(i+1))
		hs[i], hs[j] = hs[j], hs[i]
	}
}

// Name fills the schedule's name template: {schedule}, {streamer} (the
// streamers, joined), {from} and {to} (the window's first and last day),
// {slot} (the slot's date).
func Name(m *fsm.MontageSchedule, slot time.Time, streamers []string, loc *time.Location) string {
	t := m.NameTemplate
	if t == "" {
		switch m.Group {
		case PerStreamer:
			t = "{streamer} — {from} to {to}"
		case TopPerStreamer:
			t = "Top highlights — {from} to {to}"
		default:
			t = "{schedule} — {from} to {to}"
		}
	}
	from, to := Window(m, slot)
	r := strings.NewReplacer("{schedule}", m.Name, "{streamer}", strings.Join(streamers, ", "),
		"{from}", from.In(loc).Format(time.DateOnly), "{to}", to.Add(-time.Nanosecond).In(loc).Format(time.DateOnly),
		"{slot}", slot.In(loc).Format(time.DateOnly))
	name := r.Replace(t)
	if len(name) > 200 {
		name = strings.ToValidUTF8(name[:200], "")
	}
	return name
}

// JobSpec is the job a group becomes: its highlights in order, titled with
// their streamer where a montage mixes streamers, in the schedule's
// profile.
func JobSpec(m *fsm.MontageSchedule, g Group) (*montagev1.JobSpec, error) {
	s := &montagev1.JobSpec{Name: g.Name}
	if len(m.Profile) > 0 {
		s.Profile = &montagev1.RenderProfile{}
		if err := proto.Unmarshal(m.Profile, s.Profile); err != nil {
			return nil, fmt.Errorf("schedule %s profile: %w", m.Name, err)
		}
	}
	for _, h := range g.Highlights {
		title := h.Title
		if len(g.Streamers) > 1 {
			title = h.Streamer
			if h.Title != "" {
				title = h.Streamer + ": " + h.Title
			}
		}
		if len(title) > 200 {
			title = strings.ToValidUTF8(title[:200], "")
		}
		s.Highlights = append(s.Highlights, &montagev1.Highlight{Url: h.URL, At: secs(h.At), Duration: secs(h.Duration), Title: title})
	}
	return s, nil
}

func secs(v float64) string { return fmt.Sprintf("%.3f", v) }
