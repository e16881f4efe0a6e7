package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/coordinator/recurring"
	"github.com/stream-montages/montage/coordinator/sched"
	"github.com/stream-montages/montage/coordinator/webhook"
	"github.com/stream-montages/montage/internal/library"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// What the leader does on its own for the library: fire due schedule
// slots, poll feeds, deliver webhooks. Each loop wakes on the wall clock
// and decides on the coordinator's clock, acting only while this node
// leads and has caught up.

const libraryTick = time.Second

func (s *Server) leading() bool { return s.node.IsLeader() && s.node.Ready() }

// runLibrary runs the three loops until ctx ends.
func (s *Server) runLibrary(ctx context.Context) {
	go s.loop(ctx, libraryTick, nil, s.tickSchedules)
	go s.loop(ctx, libraryTick, s.feedKick, s.tickFeeds)
	go s.loop(ctx, libraryTick, nil, s.tickWebhooks)
}

func (s *Server) loop(ctx context.Context, every time.Duration, kick chan struct{}, f func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if s.leading() {
			f(ctx)
		}
	}
}

func (s *Server) kickFeeds() {
	select {
	case s.feedKick <- struct{}{}:
	default:
	}
}

// tickSchedules fires every due slot of every active schedule, oldest
// first. A slot another leader fired already is refused by the state
// machine and skipped here: each slot fires once.
func (s *Server) tickSchedules(context.Context) {
	now := s.clock.Now()
	type due struct {
		name    string
		slots   []time.Time
		skipped int
	}
	var todo []due
	s.node.View(func(st *fsm.State) {
		for _, m := range st.MontageSchedules {
			if m.Paused {
				continue
			}
			slots, skipped, err := recurring.Due(m, now)
			if err == nil && len(slots) > 0 {
				todo = append(todo, due{m.Name, slots, skipped})
			}
		}
	})
	slices.SortFunc(todo, func(a, b due) int { return a.slots[0].Compare(b.slots[0]) })
	for _, d := range todo {
		for i, slot := range d.slots {
			skipped := 0
			if i == 0 {
				skipped = d.skipped
			}
			f, err := s.fireSlot(d.name, slot, false, skipped)
			switch {
			case errors.Is(err, fsm.ErrAlreadyFired) || connect.CodeOf(err) == connect.CodeAlreadyExists:
				continue
			case connect.CodeOf(err) == connect.CodeResourceExhausted:
				// Tried every tick until there is room: said once a minute.
				if now.Sub(s.fullSaid) >= time.Minute {
					s.fullSaid = now
					s.log.Warn("schedule slot waits for room in the farm", "schedule", d.name, "slot", slot, "err", err)
				}
				return
			case err != nil:
				s.log.Warn("schedule slot did not fire; trying again", "schedule", d.name, "slot", slot, "err", err)
				return
			}
			s.log.Info("schedule fired", "schedule", d.name, "slot", slot, "jobs", f.Jobs, "note", f.Note)
		}
	}
}

// fireSlot plans a slot's montages from the library as it is now and
// proposes them with the fire, as one command.
func (s *Server) fireSlot(name string, slot time.Time, manual bool, skipped int) (*fsm.Fire, error) {
	var (
		m          fsm.MontageSchedule
		groups     []recurring.Group
		online     []*fsm.Agent
		found      bool
		unfinished int
	)
	s.node.View(func(st *fsm.State) {
		p := st.MontageSchedules[name]
		if p == nil {
			return
		}
		found, m = true, *p
		groups = recurring.Select(&m, slot, st.HighlightsOf)
		online = s.onlineAgents(st)
		unfinished = st.Unfinished()
	})
	if !found {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("schedule %q: %w", name, fsm.ErrNotFound))
	}
	// A full farm takes no fire either, as it takes no submission: the
	// slot stays due and fires once some jobs have finished.
	if unfinished >= s.cfg.MaxQueuedJobs {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"schedule %q, slot %s: the farm has %d unfinished jobs; the limit is %d (-max-queued-jobs): the slot fires when some have finished",
			name, slot.Format(time.RFC3339), unfinished, s.cfg.MaxQueuedJobs))
	}
	from, to := recurring.Window(&m, slot)
	c := &fsm.FireCmd{Schedule: name, Slot: slot, Manual: manual, Skipped: skipped}
	var notes []string
	if skipped > 0 {
		notes = append(notes, fmt.Sprintf("catch-up: %d missed slot(s) before this one were passed over", skipped))
	}
	for i, g := range groups {
		job, tasks, err := s.planGroup(&m, g, online)
		if err != nil {
			notes = append(notes, fmt.Sprintf("montage %q not made: %v", g.Name, err))
			continue
		}
		job.Origin = &fsm.Origin{Schedule: name, Slot: slot, Streamers: g.Streamers, From: from, To: to}
		if m.Webhook != nil {
			job.Webhook = &fsm.Webhook{Hook: *m.Webhook}
		}
		c.Jobs = append(c.Jobs, &fsm.SubmitCmd{Job: job, Tasks: tasks, IdempotencyKey: fmt.Sprintf("schedule/%s/%d/%d", name, slot.Unix(), i)})
	}
	if len(groups) == 0 {
		notes = append(notes, fmt.Sprintf("no highlights in the window %s to %s: no montage", from.Format(time.DateOnly), to.Add(-time.Nanosecond).Format(time.DateOnly)))
	}
	for i, n := range notes {
		if i > 0 {
			c.Note += "; "
		}
		c.Note += n
	}
	resp, err := s.apply(&fsm.Command{Fire: c})
	if err != nil {
		return nil, err
	}
	for range resp.Jobs {
		s.m.submitted.Inc()
	}
	return &fsm.Fire{Slot: slot, At: s.clock.Now(), Jobs: resp.Jobs, Note: c.Note, Manual: manual}, nil
}

// planGroup turns one montage of a slot into a job, as SubmitJob plans a
// spec: validated, its encoder chosen among the agents online.
func (s *Server) planGroup(m *fsm.MontageSchedule, g recurring.Group, online []*fsm.Agent) (*fsm.Job, []*fsm.Task, error) {
	js, err := recurring.JobSpec(m, g)
	if err != nil {
		return nil, nil, err
	}
	r, err := spec.Validate(js)
	if err != nil {
		return nil, nil, err
	}
	r.Profile.Encoder = sched.ChooseEncoder(online, r.Profile.VideoCodec, r.Profile.HWAccel)
	return planner.Plan(newJobID(), js, r, planner.Options{MaxAttempts: s.cfg.MaxAttempts, MaxTasks: s.cfg.MaxTasksPerJob})
}

// tickFeeds polls the feeds that are due, one after another.
func (s *Server) tickFeeds(ctx context.Context) {
	now := s.clock.Now()
	var due []fsm.Feed
	s.node.View(func(st *fsm.State) {
		for _, f := range st.Feeds {
			if !f.NextPoll.After(now) {
				due = append(due, *f)
			}
		}
	})
	for _, f := range due {
		if !s.leading() {
			return
		}
		c := s.pollFeed(ctx, f)
		if _, err := s.apply(&fsm.Command{Highlights: c}); err != nil {
			s.log.Warn("feed poll not recorded", "feed", f.Name, "err", err)
		}
	}
}

// maxFeedBytes bounds one feed answer.
const maxFeedBytes = 64 << 20

// pollFeed fetches a feed (conditionally, with its last ETag and
// Last-Modified) and says what it found; a failure is retried sooner than
// the feed's interval, backing off.
func (s *Server) pollFeed(ctx context.Context, f fsm.Feed) *fsm.HighlightsCmd {
	now := s.clock.Now().UTC()
	fail := func(err error) *fsm.HighlightsCmd {
		wait := min(f.Every, time.Duration(1<<min(f.Failures, 10))*30*time.Second)
		s.log.Warn("feed poll failed", "feed", f.Name, "url", f.URL, "err", err, "retry_in", wait)
		return &fsm.HighlightsCmd{Feed: &fsm.FeedPoll{Name: f.Name, Error: err.Error(), NextPoll: now.Add(wait)}}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return fail(err)
	}
	if f.ETag != "" {
		req.Header.Set("If-None-Match", f.ETag)
	}
	if f.LastModified != "" {
		req.Header.Set("If-Modified-Since", f.LastModified)
	}
	req.Header.Set("Accept", "text/csv, application/x-ndjson, application/jsonl;q=0.9, */*;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	next := now.Add(f.Every)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return &fsm.HighlightsCmd{Feed: &fsm.FeedPoll{Name: f.Name, NotModified: true, NextPoll: next}}
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Errorf("GET %s: %s", f.URL, resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFeedBytes+1))
	if err != nil {
		return fail(fmt.Errorf("GET %s: %w", f.URL, err))
	}
	if len(body) > maxFeedBytes {
		return fail(fmt.Errorf("GET %s: the answer is over %d MiB", f.URL, maxFeedBytes>>20))
	}
	rows, err := library.Parse(bytes.NewReader(body))
	if err != nil {
		return fail(fmt.Errorf("feed %s: %w", f.URL, err))
	}
	c := &fsm.HighlightsCmd{Feed: &fsm.FeedPoll{Name: f.Name, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		Rows: len(rows), NextPoll: next}}
	for _, r := range rows {
		c.Upsert = append(c.Upsert, highlightOf(r, f.Name))
	}
	return c
}

// tickWebhooks delivers the webhooks of finished jobs that are due.
func (s *Server) tickWebhooks(ctx context.Context) {
	now := s.clock.Now()
	term := s.node.Term()
	type work struct {
		id   string
		w    fsm.Webhook
		lost bool
	}
	var todo []work
	s.node.View(func(st *fsm.State) {
		st.PendingWebhooks(func(j *fsm.Job) {
			switch w := j.Webhook; {
			case w.Claimed && w.ClaimedTerm != term:
				todo = append(todo, work{j.ID, *w, true})
			case !w.Claimed && !w.NextAttempt.After(now):
				todo = append(todo, work{j.ID, *w, false})
			}
		})
	})
	for _, t := range todo {
		if t.lost {
			// The leader that claimed it may have delivered it: at most once.
			s.log.Warn("webhook outcome lost with the previous leader; not resent", "job", t.id, "url", t.w.URL)
			_, _ = s.apply(&fsm.Command{Webhook: &fsm.WebhookCmd{JobID: t.id, GiveUp: true,
				Status: "outcome unknown: the coordinator sending it stopped leading; not resent, so the job is announced at most once"}})
			continue
		}
		s.deliver(ctx, t.id, t.w, term)
	}
}

// deliver claims one attempt in raft, POSTs, and records the outcome.
func (s *Server) deliver(ctx context.Context, jobID string, w fsm.Webhook, term uint64) {
	body, err := s.webhookBody(ctx, jobID)
	if err != nil {
		s.log.Warn("webhook payload", "job", jobID, "err", err)
		return
	}
	if _, err := s.apply(&fsm.Command{Webhook: &fsm.WebhookCmd{JobID: jobID, Claim: true, Term: term}}); err != nil {
		return
	}
	status, ok := s.post(ctx, w, jobID, body)
	outcome := &fsm.WebhookCmd{JobID: jobID, Status: status, Delivered: ok}
	if !ok {
		first := w.FirstAt
		if first.IsZero() {
			first = s.clock.Now()
		}
		outcome.NextAttempt, outcome.GiveUp = webhook.Next(first, s.clock.Now(), w.Attempts+1, rand.Float64())
		s.log.Warn("webhook not delivered", "job", jobID, "url", w.URL, "status", status, "attempt", w.Attempts+1,
			"next", outcome.NextAttempt, "give_up", outcome.GiveUp)
	} else {
		s.log.Info("webhook delivered", "job", jobID, "url", w.URL, "status", status, "attempt", w.Attempts+1)
	}
	if _, err := s.apply(&fsm.Command{Webhook: outcome}); err != nil {
		s.log.Warn("webhook outcome not recorded", "job", jobID, "err", err)
	}
}

func (s *Server) post(ctx context.Context, w fsm.Webhook, jobID string, body []byte) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, webhook.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err.Error(), false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(w.Secret, body))
	req.Header.Set(webhook.DeliveryHeader, jobID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error(), false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.Status, resp.StatusCode >= 200 && resp.StatusCode < 300
}

// webhookBody is the announcement of a finished job, with links to its
// outputs that last as long as they are kept (at most a week: S3's limit).
func (s *Server) webhookBody(ctx context.Context, jobID string) ([]byte, error) {
	var (
		j   fsm.Job
		cat *fsm.Montage
	)
	s.node.View(func(st *fsm.State) {
		if p := st.Jobs[jobID]; p != nil {
			j = *p
		}
		cat = st.Catalog[jobID]
	})
	p := webhook.Payload{Event: "montage.failed", JobID: jobID, Name: j.Name, State: "failed", Error: j.Error, FinishedAt: j.FinishedAt}
	if o := j.Origin; o != nil {
		slot := o.Slot
		p.Schedule, p.Slot, p.Streamers = o.Schedule, &slot, o.Streamers
	}
	if j.State == montagev1.JobState_JOB_STATE_SUCCEEDED {
		p.Event, p.State = "montage.succeeded", "succeeded"
		if cat != nil {
			p.Duration = cat.Duration
			var ch []webhook.Chapter
			for _, c := range cat.Chapters {
				ch = append(ch, webhook.Chapter{Title: c.Title, Start: c.Start})
			}
			p.Chapters = webhook.ChaptersText(ch)
		}
		if !j.Finalized {
			if err := s.lead.Finalize(ctx, jobID); err != nil {
				return nil, fmt.Errorf("finalize %s: %w", jobID, err)
			}
			s.node.View(func(st *fsm.State) {
				if p := st.Jobs[jobID]; p != nil {
					j = *p
				}
			})
		}
		ttl := min(s.cfg.Retention, 7*24*time.Hour)
		if ttl <= 0 {
			ttl = 7 * 24 * time.Hour
		}
		p.Links = map[string]string{}
		for name, key := range j.Outputs {
			u, err := s.store.PresignGet(key, ttl)
			if err != nil {
				return nil, fmt.Errorf("presign %s: %w", key, err)
			}
			p.Links[name] = u
		}
		exp := s.clock.Now().Add(ttl).UTC()
		p.LinksExpire = &exp
	}
	return webhook.Encode(p)
}
