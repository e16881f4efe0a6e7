package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func hl(id, streamer string, score int64) *Highlight {
	return &Highlight{ID: id, Streamer: streamer, URL: "http://h/" + id + ".mp4", At: 5, Duration: 60, Score: score, Date: "2026-11-02", Tags: []string{"clutch"}}
}

// Upserts are idempotent by ID and keep the first AddedAt; an update moves
// a highlight between streamers in the index; removals forget it.
func TestHighlightsUpsertAndRemove(t *testing.T) {
	l := newLog()
	r := l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{hl("a", "s1", 1), hl("b", "s1", 2), hl("c", "s2", 3)}}})
	if r.Err != nil || r.Added != 3 {
		t.Fatalf("first import: %+v", r)
	}
	added := l.s.Highlights["a"].AddedAt
	if r := l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{hl("a", "s1", 1), hl("b", "s1", 2), hl("c", "s2", 3)}}}); r.Added != 0 || r.Unchanged != 3 {
		t.Fatalf("re-import: %+v", r)
	}
	moved := hl("b", "s2", 9)
	if r := l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{moved}}}); r.Updated != 1 {
		t.Fatalf("update: %+v", r)
	}
	if r := l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{{ID: "x", URL: "http://h/x"}}}}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("a highlight without a streamer: %v", r.Err)
	}
	count := func(streamer string) int {
		n := 0
		l.s.HighlightsOf(streamer, func(*Highlight) { n++ })
		return n
	}
	if count("s1") != 1 || count("s2") != 2 || count("") != 3 || !l.s.Highlights["a"].AddedAt.Equal(added) {
		t.Fatalf("index: s1 %d, s2 %d, all %d", count("s1"), count("s2"), count(""))
	}
	if r := l.apply(&Command{Highlights: &HighlightsCmd{Remove: []string{"a", "zz"}}}); r.Removed != 1 || count("s1") != 0 {
		t.Fatalf("remove: %+v, s1 %d", r, count("s1"))
	}
	if got := l.s.Streamers(); !reflect.DeepEqual(got, []string{"s2"}) {
		t.Fatalf("streamers %v", got)
	}
}

// A feed's polls record their outcome: new rows and validators, a 304,
// an error counted until the next success.
func TestFeedPolls(t *testing.T) {
	l := newLog()
	l.apply(&Command{Feed: &FeedCmd{Add: &Feed{Name: "f", URL: "http://feed/x.csv", Every: time.Hour}}})
	l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{hl("a", "s1", 1)}, Feed: &FeedPoll{Name: "f", ETag: `"v1"`, Rows: 1}}})
	l.apply(&Command{Highlights: &HighlightsCmd{Feed: &FeedPoll{Name: "f", NotModified: true}}})
	l.apply(&Command{Highlights: &HighlightsCmd{Feed: &FeedPoll{Name: "f", Error: "dial tcp: refused"}}})
	f := l.s.Feeds["f"]
	if f.ETag != `"v1"` || f.Polls != 3 || f.NotModified != 1 || f.Failures != 1 || f.LastError != "dial tcp: refused" || f.Rows != 1 {
		t.Fatalf("feed %+v", f)
	}
	if r := l.apply(&Command{Highlights: &HighlightsCmd{Feed: &FeedPoll{Name: "gone"}}}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("poll of an unknown feed: %v", r.Err)
	}
}

// A slot fires once: its jobs are submitted with it, a second fire of the
// same slot (a new leader's, say) is refused and submits nothing, an older
// slot is refused unless fired by hand and not fired before.
func TestFireExactlyOnce(t *testing.T) {
	l := newLog()
	l.apply(&Command{MontageSchedule: &MontageScheduleCmd{Add: &MontageSchedule{Name: "weekly", Cron: "0 9 * * MON", Group: "per-streamer"}}})
	slot := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	fire := func(s time.Time, manual bool, ids ...string) Response {
		c := &FireCmd{Schedule: "weekly", Slot: s, Manual: manual}
		for _, id := range ids {
			sc := job(id, 1, 3)
			sc.IdempotencyKey = "schedule/weekly/" + id
			sc.Job.Origin = &Origin{Schedule: "weekly", Slot: s}
			c.Jobs = append(c.Jobs, sc)
		}
		return l.apply(&Command{Fire: c})
	}
	if r := fire(slot, false, "w1a", "w1b"); r.Err != nil || len(r.Jobs) != 2 {
		t.Fatalf("first fire: %+v", r)
	}
	if r := fire(slot, false, "w1c"); !errors.Is(r.Err, ErrAlreadyFired) || l.s.Jobs["w1c"] != nil {
		t.Fatalf("second fire of the slot: %v", r.Err)
	}
	if r := fire(slot, true, "w1d"); !errors.Is(r.Err, ErrAlreadyFired) {
		t.Fatalf("a manual fire of a fired slot: %v", r.Err)
	}
	earlier := slot.Add(-7 * 24 * time.Hour)
	if r := fire(earlier, false); !errors.Is(r.Err, ErrAlreadyFired) {
		t.Fatalf("an automatic fire of an older slot: %v", r.Err)
	}
	if r := fire(earlier, true, "w0"); r.Err != nil {
		t.Fatalf("a manual fire of an older slot never fired: %v", r.Err)
	}
	empty := slot.Add(7 * 24 * time.Hour)
	l.apply(&Command{Fire: &FireCmd{Schedule: "weekly", Slot: empty, Note: "no highlights in the window"}})
	m := l.s.MontageSchedules["weekly"]
	if !m.LastSlot.Equal(empty) || len(m.History) != 3 || m.History[2].Note != "no highlights in the window" || l.s.Jobs["w1a"].Origin.Schedule != "weekly" {
		t.Fatalf("schedule after fires: %+v", m)
	}
	l.apply(&Command{MontageSchedule: &MontageScheduleCmd{Pause: "weekly"}})
	if !l.s.MontageSchedules["weekly"].Paused {
		t.Fatal("pause lost")
	}
	if r := l.apply(&Command{MontageSchedule: &MontageScheduleCmd{Add: &MontageSchedule{Name: "weekly", Cron: "@daily"}}}); !errors.Is(r.Err, ErrExists) {
		t.Fatalf("a second schedule of the same name: %v", r.Err)
	}
}

// A job that succeeds enters the catalog with its chapters and the
// highlights' committed lengths; retention's removal keeps the entry and
// marks the media gone. Webhook claims and outcomes are recorded and a
// settled delivery takes no more.
func TestCatalogAndWebhook(t *testing.T) {
	l := newLog()
	register(l, "a1")
	sc := job("j1", 2, 3)
	sc.Job.Webhook = &Webhook{Hook: Hook{URL: "http://hook", Secret: "s"}}
	for i, tk := range sc.Tasks[:2] {
		tk.Role = "highlight"
		tk.Render = &RenderInput{Start: float64(10 * i), Duration: 4, Title: []string{"One", "Two"}[i]}
	}
	l.apply(&Command{Submit: sc})
	for i, id := range []string{"j1-r0", "j1-r1", "j1-concat"} {
		g := l.apply(&Command{Grant: &GrantCmd{TaskID: id, AgentID: "a1"}})
		l.apply(&Command{Complete: &CompleteCmd{TaskID: id, AgentID: "a1", Token: g.Token, Result: Result{Key: id, Duration: float64(4 + i), Size: 100}}})
	}
	m := l.s.Catalog["j1"]
	if m == nil || m.Duration != 9 || len(m.Highlights) != 2 || m.Highlights[1].Duration != 5 || m.Size != 100 ||
		!reflect.DeepEqual(m.Chapters, []Chapter{{"One", 0}, {"Two", 4}}) {
		t.Fatalf("catalog entry %+v", m)
	}
	pending := func() []string {
		var ids []string
		l.s.PendingWebhooks(func(j *Job) { ids = append(ids, j.ID) })
		return ids
	}
	if got := pending(); !reflect.DeepEqual(got, []string{"j1"}) {
		t.Fatalf("pending webhooks after the job succeeded: %v", got)
	}
	l.apply(&Command{Webhook: &WebhookCmd{JobID: "j1", Claim: true, Term: 2}})
	l.apply(&Command{Webhook: &WebhookCmd{JobID: "j1", Status: "500 Internal Server Error", NextAttempt: t0.Add(time.Hour)}})
	l.apply(&Command{Webhook: &WebhookCmd{JobID: "j1", Claim: true, Term: 2}})
	l.apply(&Command{Webhook: &WebhookCmd{JobID: "j1", Delivered: true, Status: "200 OK"}})
	if w := l.s.Jobs["j1"].Webhook; !w.Delivered || w.Attempts != 2 || w.Claimed || len(pending()) != 0 {
		t.Fatalf("webhook %+v, pending %v", w, pending())
	}
	if r := l.apply(&Command{Webhook: &WebhookCmd{JobID: "j1", Claim: true}}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("a claim after delivery: %v", r.Err)
	}
	restored := roundTrip(t, l.s)
	if !reflect.DeepEqual(restored.Catalog["j1"], m) || !restored.Jobs["j1"].Webhook.Delivered {
		t.Fatalf("after a snapshot: %+v %+v", restored.Catalog["j1"], restored.Jobs["j1"].Webhook)
	}
	l.apply(&Command{Cancel: &CancelCmd{JobID: "j1"}})
	l.apply(&Command{MarkDeleting: &JobCmd{JobID: "j1"}})
	if r := l.apply(&Command{RemoveJob: &JobCmd{JobID: "j1"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if m := l.s.Catalog["j1"]; m == nil || m.MediaExpiredAt.IsZero() || m.Outputs != nil {
		t.Fatalf("catalog after retention: %+v", m)
	}
}

// The library, feeds and schedules come back from a snapshot whole, with
// the per-streamer index rebuilt.
func TestLibrarySurvivesSnapshot(t *testing.T) {
	l := newLog()
	l.apply(&Command{Highlights: &HighlightsCmd{Upsert: []*Highlight{hl("a", "s1", 1), hl("b", "s2", 2)}}})
	l.apply(&Command{Feed: &FeedCmd{Add: &Feed{Name: "f", URL: "http://feed", Every: time.Minute}}})
	l.apply(&Command{MontageSchedule: &MontageScheduleCmd{Add: &MontageSchedule{Name: "w", Cron: "@weekly", Window: 7 * 24 * time.Hour, Tags: []string{"x"}}}})
	l.apply(&Command{Fire: &FireCmd{Schedule: "w", Slot: t0, Note: "none"}})
	r := roundTrip(t, l.s)
	if !reflect.DeepEqual(r.Highlights, l.s.Highlights) || !reflect.DeepEqual(r.Feeds, l.s.Feeds) || !reflect.DeepEqual(r.MontageSchedules, l.s.MontageSchedules) {
		t.Fatal("library records differ after a snapshot")
	}
	n := 0
	r.HighlightsOf("s2", func(*Highlight) { n++ })
	if n != 1 {
		t.Fatalf("index after restore: %d", n)
	}
}

// roundTrip is the state a snapshot of s restores to.
func roundTrip(t *testing.T, s *State) *State {
	t.Helper()
	var snap bytes.Buffer
	if err := s.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(&snap)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
