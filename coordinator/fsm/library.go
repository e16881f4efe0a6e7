package fsm

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// The highlight library, its feeds, the montage schedules with their fires,
// and the montage catalog. Their records are replaced, never changed in
// place, so a snapshot's frozen view may share them.

// ErrAlreadyFired refuses a second fire of a schedule's slot.
var (
	ErrAlreadyFired = errors.New("this slot of the schedule has fired already")
	ErrExists       = errors.New("exists already")
)

// Highlight is one entry of the library. ID derives from (URL, At), so an
// import of the same rows again changes nothing.
type Highlight struct {
	ID       string    `json:"id"`
	Streamer string    `json:"streamer"`
	URL      string    `json:"url"`
	At       float64   `json:"at"`
	Duration float64   `json:"duration"`
	Title    string    `json:"title,omitempty"`
	Date     string    `json:"date,omitempty"` // YYYY-MM-DD of the stream
	Score    int64     `json:"score,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	AddedAt  time.Time `json:"added_at"`
	Feed     string    `json:"feed,omitempty"` // the feed it came from, if any
}

// same reports whether h and o hold the same content (AddedAt aside).
func (h *Highlight) same(o *Highlight) bool {
	return h.Streamer == o.Streamer && h.URL == o.URL && h.At == o.At && h.Duration == o.Duration && h.Title == o.Title &&
		h.Date == o.Date && h.Score == o.Score && slices.Equal(h.Tags, o.Tags) && h.Feed == o.Feed
}

// Feed is an HTTP(S) URL of highlight rows the leader polls.
type Feed struct {
	Name  string        `json:"name"`
	URL   string        `json:"url"`
	Every time.Duration `json:"every"`
	// What the last answer said, for a conditional request next time.
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	LastPoll     time.Time `json:"last_poll"`
	NextPoll     time.Time `json:"next_poll"`
	LastError    string    `json:"last_error,omitempty"`
	Failures     int       `json:"failures,omitempty"` // in a row
	Polls        int       `json:"polls"`
	NotModified  int       `json:"not_modified"` // answers of 304
	Rows         int       `json:"rows"`         // rows in the last full answer
}

// MontageSchedule makes montages from the library on a cron schedule.
type MontageSchedule struct {
	Name     string        `json:"name"`
	Cron     string        `json:"cron"`
	TimeZone string        `json:"tz,omitempty"`
	Window   time.Duration `json:"window"`
	// Group is "per-streamer", "top-per-streamer" or "all".
	Group         string   `json:"group"`
	Streamers     []string `json:"streamers,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	MinScore      int64    `json:"min_score,omitempty"`
	MaxHighlights int      `json:"max_highlights,omitempty"`
	// Order is "chronological", "score" or "shuffle" ("" for the group's
	// default); Seed fixes the shuffle when HasSeed.
	Order        string `json:"order,omitempty"`
	Seed         int64  `json:"seed,omitempty"`
	HasSeed      bool   `json:"has_seed,omitempty"`
	Profile      []byte `json:"profile,omitempty"` // montagev1.RenderProfile
	NameTemplate string `json:"name_template,omitempty"`
	// CatchUp is "all" (each missed slot fires once) or "last".
	CatchUp   string    `json:"catch_up,omitempty"`
	Webhook   *Hook     `json:"webhook,omitempty"`
	Paused    bool      `json:"paused,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastSlot is the latest slot fired (or skipped by catch-up last):
	// the leader never fires a slot at or before it on its own.
	LastSlot time.Time `json:"last_slot"`
	History  []Fire    `json:"history,omitempty"` // newest last, at most historyLen
}

// historyLen bounds a schedule's kept fires.
const historyLen = 50

// Fire is one slot of a schedule that fired.
type Fire struct {
	Slot   time.Time `json:"slot"`
	At     time.Time `json:"at"`
	Jobs   []string  `json:"jobs,omitempty"`
	Note   string    `json:"note,omitempty"`
	Manual bool      `json:"manual,omitempty"`
}

// Hook is where a job's end is announced, with the key its POSTs are
// signed with (never shown by the API).
type Hook struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// Webhook is a job's hook and its delivery record. A delivery is claimed
// in raft before each POST: a leader that finds a claim from before its
// election cannot know whether the POST arrived, and sends no other, so a
// job is announced at most once.
type Webhook struct {
	Hook
	Attempts    int       `json:"attempts,omitempty"`
	Claimed     bool      `json:"claimed,omitempty"`      // a POST may be on its way
	ClaimedTerm uint64    `json:"claimed_term,omitempty"` // by the leader of this raft term
	NextAttempt time.Time `json:"next_attempt"`
	FirstAt     time.Time `json:"first_at"`
	LastStatus  string    `json:"last_status,omitempty"`
	Delivered   bool      `json:"delivered,omitempty"`
	DeliveredAt time.Time `json:"delivered_at"`
	// GaveUp: retries ran out, or a claim's outcome was lost with its leader.
	GaveUp bool `json:"gave_up,omitempty"`
}

// Origin is where a scheduled job came from.
type Origin struct {
	Schedule  string    `json:"schedule"`
	Slot      time.Time `json:"slot"`
	Streamers []string  `json:"streamers,omitempty"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
}

// Montage is a catalog entry: a finished montage, kept after its media.
type Montage struct {
	JobID      string             `json:"job_id"`
	Name       string             `json:"name"`
	Origin     *Origin            `json:"origin,omitempty"`
	Highlights []MontageHighlight `json:"highlights"`
	Chapters   []Chapter          `json:"chapters,omitempty"`
	Duration   float64            `json:"duration"`
	Size       int64              `json:"size"`
	Outputs    map[string]string  `json:"outputs,omitempty"`
	FinishedAt time.Time          `json:"finished_at"`
	// MediaExpiredAt is when retention deleted the media (zero: still there).
	MediaExpiredAt time.Time `json:"media_expired_at"`
}

// MontageHighlight is a highlight as a montage used it.
type MontageHighlight struct {
	URL      string  `json:"url"`
	At       float64 `json:"at"`
	Duration float64 `json:"duration"`
	Title    string  `json:"title,omitempty"`
}

// Chapter is a part of a montage: its title and where it starts.
type Chapter struct {
	Title string  `json:"title"`
	Start float64 `json:"start"`
}

// HighlightsCmd adds or updates (by ID) and removes library highlights.
// A feed's poll carries its outcome in Feed.
type HighlightsCmd struct {
	Upsert []*Highlight `json:"upsert,omitempty"`
	Remove []string     `json:"remove,omitempty"`
	Feed   *FeedPoll    `json:"feed,omitempty"`
}

// FeedPoll is what one poll of a feed found.
type FeedPoll struct {
	Name         string    `json:"name"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	NotModified  bool      `json:"not_modified,omitempty"`
	Error        string    `json:"error,omitempty"`
	NextPoll     time.Time `json:"next_poll"`
	Rows         int       `json:"rows,omitempty"`
}

// FeedCmd adds (or replaces) a feed, or removes one by name.
type FeedCmd struct {
	Add    *Feed  `json:"add,omitempty"`
	Remove string `json:"remove,omitempty"`
}

// MontageScheduleCmd adds a schedule, removes one, or pauses/resumes one.
type MontageScheduleCmd struct {
	Add    *MontageSchedule `json:"add,omitempty"`
	Remove string           `json:"remove,omitempty"`
	Pause  string           `json:"pause,omitempty"`
	Resume string           `json:"resume,omitempty"`
}

// FireCmd fires one slot of a schedule: its jobs, planned by the leader,
// are submitted with it or not at all. Skipped counts the missed slots a
// catch-up "last" passed over before this one.
type FireCmd struct {
	Schedule string       `json:"schedule"`
	Slot     time.Time    `json:"slot"`
	Manual   bool         `json:"manual,omitempty"`
	Jobs     []*SubmitCmd `json:"jobs,omitempty"`
	Note     string       `json:"note,omitempty"`
	Skipped  int          `json:"skipped,omitempty"`
}

// WebhookCmd records a step of a job's webhook delivery.
type WebhookCmd struct {
	JobID string `json:"job_id"`
	// Claim: a POST is about to be sent by the leader of Term.
	Claim bool   `json:"claim,omitempty"`
	Term  uint64 `json:"term,omitempty"`
	// Otherwise the outcome of the claimed POST: Delivered, or Status and
	// NextAttempt (GiveUp when the retries ran out, or Lost when a new
	// leader found a claim it cannot settle).
	Delivered   bool      `json:"delivered,omitempty"`
	Status      string    `json:"status,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
	GiveUp      bool      `json:"give_up,omitempty"`
}

func (s *State) highlights(at time.Time, c *HighlightsCmd) Response {
	var r Response
	for _, h := range c.Upsert {
		if h == nil || h.ID == "" || h.Streamer == "" || h.URL == "" {
			return Response{Err: fmt.Errorf("%w: a highlight needs an id, a streamer and a url", ErrBadCommand)}
		}
	}
	if c.Feed != nil && s.Feeds[c.Feed.Name] == nil {
		return Response{Err: fmt.Errorf("feed %q: %w", c.Feed.Name, ErrNotFound)}
	}
	for _, h := range c.Upsert {
		old := s.Highlights[h.ID]
		if old != nil && old.same(h) {
			r.Unchanged++
			continue
		}
		n := *h
		n.Tags = slices.Clone(h.Tags)
		n.AddedAt = at
		if old != nil {
			n.AddedAt = old.AddedAt
			s.unindexHighlight(old)
			r.Updated++
		} else {
			r.Added++
		}
		s.Highlights[n.ID] = &n
		s.indexHighlight(&n)
	}
	for _, id := range c.Remove {
		if old := s.Highlights[id]; old != nil {
			s.unindexHighlight(old)
			delete(s.Highlights, id)
			r.Removed++
		}
	}
	if p := c.Feed; p != nil {
		f := *s.Feeds[p.Name]
		f.LastPoll, f.NextPoll = at, p.NextPoll
		f.Polls++
		switch {
		case p.Error != "":
			f.LastError = firstLine(p.Error)
			f.Failures++
		case p.NotModified:
			f.NotModified++
			f.LastError, f.Failures = "", 0
		default:
			f.ETag, f.LastModified, f.Rows = p.ETag, p.LastModified, p.Rows
			f.LastError, f.Failures = "", 0
		}
		s.Feeds[f.Name] = &f
	}
	return r
}

func (s *State) indexHighlight(h *Highlight) {
	m := s.ix.byStreamer[h.Streamer]
	if m == nil {
		m = map[string]struct{}{}
		s.ix.byStreamer[h.Streamer] = m
	}
	m[h.ID] = struct{}{}
}

func (s *State) unindexHighlight(h *Highlight) {
	if m := s.ix.byStreamer[h.Streamer]; m != nil {
		delete(m, h.ID)
		if len(m) == 0 {
			delete(s.ix.byStreamer, h.Streamer)
		}
	}
}

// HighlightsOf yields the library highlights of one streamer, or of all
// when streamer is "" (unordered).
func (s *State) HighlightsOf(streamer string, f func(*Highlight)) {
	if streamer == "" {
		for _, h := range s.Highlights {
			f(h)
		}
		return
	}
	for id := range s.ix.byStreamer[streamer] {
		f(s.Highlights[id])
	}
}

// Streamers lists the streamers with highlights in the library, sorted.
func (s *State) Streamers() []string {
	out := make([]string, 0, len(s.ix.byStreamer))
	for name := range s.ix.byStreamer {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (s *State) feed(c *FeedCmd) Response {
	switch {
	case c.Add != nil:
		if c.Add.Name == "" || c.Add.URL == "" || c.Add.Every <= 0 {
			return Response{Err: fmt.Errorf("%w: a feed needs a name, a url and an interval", ErrBadCommand)}
		}
		f := *c.Add
		s.Feeds[f.Name] = &f
	case c.Remove != "":
		if s.Feeds[c.Remove] == nil {
			return Response{Err: fmt.Errorf("feed %q: %w", c.Remove, ErrNotFound)}
		}
		delete(s.Feeds, c.Remove)
	}
	return Response{}
}

func (s *State) montageSchedule(c *MontageScheduleCmd) Response {
	switch {
	case c.Add != nil:
		if c.Add.Name == "" || c.Add.Cron == "" {
			return Response{Err: fmt.Errorf("%w: a schedule needs a name and a cron expression", ErrBadCommand)}
		}
		if s.MontageSchedules[c.Add.Name] != nil {
			return Response{Err: fmt.Errorf("schedule %q: %w", c.Add.Name, ErrExists)}
		}
		m := *c.Add
		s.MontageSchedules[m.Name] = &m
	case c.Remove != "":
		if s.MontageSchedules[c.Remove] == nil {
			return Response{Err: fmt.Errorf("schedule %q: %w", c.Remove, ErrNotFound)}
		}
		delete(s.MontageSchedules, c.Remove)
	case c.Pause != "" || c.Resume != "":
		name := c.Pause + c.Resume
		old := s.MontageSchedules[name]
		if old == nil {
			return Response{Err: fmt.Errorf("schedule %q: %w", name, ErrNotFound)}
		}
		m := *old
		m.Paused = c.Pause != ""
		s.MontageSchedules[name] = &m
	}
	return Response{}
}

// Fired reports whether a schedule's slot is in its kept history.
func (m *MontageSchedule) Fired(slot time.Time) (Fire, bool) {
	for _, f := range m.History {
		if f.Slot.Equal(slot) {
			return f, true
		}
	}
	return Fire{}, false
}

func (s *State) fire(idx uint64, at time.Time, c *FireCmd) Response {
	old := s.MontageSchedules[c.Schedule]
	if old == nil {
		return Response{Err: fmt.Errorf("schedule %q: %w", c.Schedule, ErrNotFound)}
	}
	if f, ok := old.Fired(c.Slot); ok || !c.Manual && !c.Slot.After(old.LastSlot) {
		return Response{Err: fmt.Errorf("schedule %s, slot %s (jobs %v): %w", c.Schedule, c.Slot.UTC().Format(time.RFC3339), f.Jobs, ErrAlreadyFired)}
	}
	for _, sc := range c.Jobs {
		if sc == nil || sc.Job == nil || s.Jobs[sc.Job.ID] != nil {
			return Response{Err: fmt.Errorf("%w: a fire's job is missing or exists", ErrBadCommand)}
		}
		if sc.IdempotencyKey != "" && s.Idempotency[sc.IdempotencyKey] != "" {
			return Response{Err: fmt.Errorf("schedule %s: job key %s: %w", c.Schedule, sc.IdempotencyKey, ErrAlreadyFired)}
		}
	}
	f := Fire{Slot: c.Slot, At: at, Note: c.Note, Manual: c.Manual}
	var r Response
	for _, sc := range c.Jobs {
		jr := s.submit(idx, at, sc)
		if jr.Err != nil {
			return jr // checked above; a plan that fails here fails whole
		}
		f.Jobs = append(f.Jobs, jr.JobID)
		r.Jobs = append(r.Jobs, jr.JobID)
	}
	m := *old
	if c.Slot.After(m.LastSlot) {
		m.LastSlot = c.Slot
	}
	m.History = append(slices.Clone(m.History), f)
	if len(m.History) > historyLen {
		m.History = m.History[len(m.History)-historyLen:]
	}
	s.MontageSchedules[m.Name] = &m
	return r
}

func (s *State) webhook(at time.Time, c *WebhookCmd) Response {
	j := s.Jobs[c.JobID]
	if j == nil || j.Webhook == nil {
		return Response{Err: fmt.Errorf("job %s webhook: %w", c.JobID, ErrNotFound)}
	}
	w := *s.job(c.JobID).Webhook
	if w.Delivered || w.GaveUp {
		return Response{Err: fmt.Errorf("job %s: its webhook is settled: %w", c.JobID, ErrBadCommand)}
	}
	switch {
	case c.Claim:
		w.Claimed, w.ClaimedTerm = true, c.Term
		w.Attempts++
		if w.FirstAt.IsZero() {
			w.FirstAt = at
		}
	case c.Delivered:
		w.Claimed, w.Delivered, w.DeliveredAt, w.LastStatus = false, true, at, c.Status
	default:
		w.Claimed, w.LastStatus, w.NextAttempt, w.GaveUp = false, c.Status, c.NextAttempt, c.GiveUp
	}
	j = s.job(c.JobID)
	j.Webhook = &w
	s.refreshJobOnly(j)
	return Response{}
}

// catalog adds the just-succeeded job j to the montage catalog.
func (s *State) catalog(j *Job) {
	m := &Montage{JobID: j.ID, Name: j.Name, Origin: j.Origin, FinishedAt: j.FinishedAt, Outputs: map[string]string{}}
	for k, v := range j.Outputs {
		m.Outputs[k] = v
	}
	if c, ok := j.OutputSums["montage"]; ok {
		m.Size = c.Size
	}
	// Chapters from the committed segments, in plan order: the intro, the
	// highlights (chunks summed), the outro.
	var at float64
	last := ""
	for _, id := range j.TaskIDs {
		t := s.Tasks[id]
		if t == nil || t.Type != montagev1.TaskType_TASK_TYPE_RENDER || t.Render == nil || t.Result == nil {
			continue
		}
		key := fmt.Sprintf("%s/%d", t.Role, t.HighlightIndex)
		if key != last {
			title := t.Render.Title
			if title == "" {
				title = t.Role
			}
			m.Chapters = append(m.Chapters, Chapter{Title: title, Start: at})
			last = key
		}
		if t.Role == "highlight" || t.Role == "" {
			if t.Chunk == 0 || len(m.Highlights) == 0 { // a plan lists a highlight's chunks in order, the first first
				m.Highlights = append(m.Highlights, MontageHighlight{URL: s.SourceOf(t), At: t.Render.Start, Title: t.Render.Title})
			}
			m.Highlights[len(m.Highlights)-1].Duration += t.Result.Duration
		}
		at += t.Result.Duration
	}
	m.Duration = at
	s.Catalog[m.JobID] = m
}

// mediaExpired marks a catalog entry whose job retention removed.
func (s *State) mediaExpired(at time.Time, jobID string) {
	if old := s.Catalog[jobID]; old != nil {
		m := *old
		m.MediaExpiredAt, m.Outputs = at, nil
		s.Catalog[jobID] = &m
	}
}
