package recurring

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/fsm"
)

var monday = time.Date(2026, 11, 9, 9, 0, 0, 0, time.UTC) // a Monday, 09:00

func weekly(group string) *fsm.MontageSchedule {
	return &fsm.MontageSchedule{Name: "weekly", Cron: "0 9 * * MON", Window: 7 * 24 * time.Hour, Group: group,
		CreatedAt: monday.Add(-time.Hour)}
}

func TestDueAndCatchUp(t *testing.T) {
	m := weekly(PerStreamer)
	if s, _, _ := Due(m, monday.Add(-time.Minute)); len(s) != 0 {
		t.Fatalf("due before the first slot: %v", s)
	}
	s, skipped, err := Due(m, monday.Add(15*24*time.Hour))
	if err != nil || len(s) != 3 || !s[0].Equal(monday) || !s[2].Equal(monday.Add(14*24*time.Hour)) || skipped != 0 {
		t.Fatalf("after downtime: %v skipped %d %v", s, skipped, err)
	}
	m.LastSlot = monday
	if s, _, _ := Due(m, monday.Add(15*24*time.Hour)); len(s) != 2 {
		t.Fatalf("after a fired slot: %v", s)
	}
	m.CatchUp = CatchUpLast
	if s, skipped, _ := Due(m, monday.Add(15*24*time.Hour)); len(s) != 1 || !s[0].Equal(monday.Add(14*24*time.Hour)) || skipped != 1 {
		t.Fatalf("catch-up last: %v skipped %d", s, skipped)
	}
	// In the schedule's zone: 09:00 in Berlin is 08:00 UTC in November.
	m = weekly(PerStreamer)
	m.CreatedAt = monday.Add(-2 * time.Hour)
	m.TimeZone = "Europe/Berlin"
	if s, _, _ := Due(m, monday); len(s) != 1 || !s[0].Equal(monday.Add(-time.Hour)) {
		t.Fatalf("Berlin slot: %v", s)
	}
}

func TestSlotAt(t *testing.T) {
	m := weekly(All)
	for at, want := range map[time.Time]time.Time{
		monday:                          monday,
		monday.Add(3 * 24 * time.Hour):  monday,
		monday.Add(-time.Second):        monday.Add(-7 * 24 * time.Hour),
		monday.Add(40 * 24 * time.Hour): monday.Add(35 * 24 * time.Hour),
	} {
		if got, err := SlotAt(m, at); err != nil || !got.Equal(want) {
			t.Errorf("SlotAt(%s) = %s %v, want %s", at, got, err, want)
		}
	}
	m.Cron = "0 0 1 1 *"
	if got, err := SlotAt(m, monday); err != nil || !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("yearly: %s %v", got, err)
	}
}

// library of 3 streamers × 10 days, one highlight a day each, scored so
// that each streamer's best is on a known day.
func library() Library {
	var all []*fsm.Highlight
	for _, s := range []string{"alice", "bob", "carol"} {
		for d := 0; d < 10; d++ {
			all = append(all, &fsm.Highlight{ID: fmt.Sprint(s, d), Streamer: s, URL: "http://h/" + s + ".mp4", At: float64(d * 10), Duration: 5,
				Date: monday.Add(time.Duration(d-7) * 24 * time.Hour).Format(time.DateOnly), Score: int64((d*7 + len(s)) % 10), Tags: []string{fmt.Sprint("d", d%2)}})
		}
	}
	return func(streamer string, f func(*fsm.Highlight)) {
		for _, h := range all {
			if streamer == "" || h.Streamer == streamer {
				f(h)
			}
		}
	}
}

func ids(hs []*fsm.Highlight) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return strings.Join(out, " ")
}

func TestSelectPerStreamer(t *testing.T) {
	g := Select(weekly(PerStreamer), monday, library())
	if len(g) != 3 || g[0].Name != "alice — 2026-11-02 to 2026-11-08" {
		t.Fatalf("groups %+v", g)
	}
	if got := ids(g[1].Highlights); got != "bob0 bob1 bob2 bob3 bob4 bob5 bob6" {
		t.Fatalf("bob's week: %s", got)
	}
	next := Select(weekly(PerStreamer), monday.Add(7*24*time.Hour), library())
	if got := ids(next[2].Highlights); got != "carol7 carol8 carol9" {
		t.Fatalf("carol's second week: %s", got)
	}
	if g := Select(weekly(PerStreamer), monday.Add(14*24*time.Hour), library()); len(g) != 0 {
		t.Fatalf("a week without highlights made %d montages", len(g))
	}
	m := weekly(PerStreamer)
	m.Streamers, m.Tags, m.MinScore, m.MaxHighlights, m.Order = []string{"alice"}, []string{"d0"}, 1, 2, ByScore
	g = Select(m, monday, library())
	if len(g) != 1 || ids(g[0].Highlights) != "alice2 alice6" {
		t.Fatalf("filtered: %+v %s", g, ids(g[0].Highlights))
	}
}

// The top of each streamer (ties: earliest), shuffled by a seed from the
// schedule and slot: the same on every call for a slot, another for
// another slot; a given seed fixes it.
func TestSelectTopPerStreamerIsDeterministic(t *testing.T) {
	m := weekly(TopPerStreamer)
	a := Select(m, monday, library())
	if len(a) != 1 || len(a[0].Highlights) != 3 || strings.Join(a[0].Streamers, ",") != "alice,bob,carol" {
		t.Fatalf("top: %+v", a)
	}
	for _, h := range a[0].Highlights {
		for d := 0; d < 7; d++ {
			if score := int64((d*7 + len(h.Streamer)) % 10); score > h.Score {
				t.Errorf("%s: picked score %d, but day %d scores %d", h.Streamer, h.Score, d, score)
			}
		}
	}
	if ids(Select(m, monday, library())[0].Highlights) != ids(a[0].Highlights) {
		t.Fatal("the same slot shuffled differently")
	}
	orders := map[string]bool{}
	for w := 0; w < 8; w++ {
		m2 := weekly(TopPerStreamer)
		m2.Window = 100 * 24 * time.Hour // every week sees the same three tops
		g := Select(m2, monday.Add(time.Duration(w)*7*24*time.Hour), library())
		orders[ids(g[0].Highlights)] = true
	}
	if len(orders) < 2 {
		t.Fatalf("eight slots gave one order: %v", orders)
	}
	m.HasSeed, m.Seed = true, 42
	x, y := Select(m, monday, library()), Select(m, monday.Add(7*24*time.Hour), library())
	if len(y) != 1 || len(x[0].Highlights) != 3 {
		t.Fatalf("seeded: %+v %+v", x, y)
	}
}

func TestCheckNamesTheField(t *testing.T) {
	for field, edit := range map[string]func(m *fsm.MontageSchedule){
		"name":           func(m *fsm.MontageSchedule) { m.Name = "no spaces" },
		"cron":           func(m *fsm.MontageSchedule) { m.Cron = "@every 1h" },
		"tz":             func(m *fsm.MontageSchedule) { m.TimeZone = "Mars/Olympus" },
		"window":         func(m *fsm.MontageSchedule) { m.Window = 0 },
		"group":          func(m *fsm.MontageSchedule) { m.Group = "best" },
		"order":          func(m *fsm.MontageSchedule) { m.Order = "random" },
		"catch_up":       func(m *fsm.MontageSchedule) { m.CatchUp = "none" },
		"max_highlights": func(m *fsm.MontageSchedule) { m.MaxHighlights = 501 },
		"profile":        func(m *fsm.MontageSchedule) { m.Profile = []byte{0xff} },
	} {
		m := weekly(All)
		edit(m)
		var fe *FieldError
		if err := Check(m); !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := Check(weekly(All)); err != nil {
		t.Fatal(err)
	}
}

func TestJobSpec(t *testing.T) {
	g := Select(weekly(All), monday, library())
	s, err := JobSpec(weekly(All), g[0])
	if err != nil || len(s.Highlights) != 21 || s.Highlights[0].Title != "alice" || s.Highlights[0].At != "0.000" || s.Name != "weekly — 2026-11-02 to 2026-11-08" {
		t.Fatalf("spec %v %v", s, err)
	}
}
