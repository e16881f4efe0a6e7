package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/recurring"
	"github.com/stream-montages/montage/coordinator/webhook"
	"github.com/stream-montages/montage/internal/library"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// hookOf checks a webhook's URL and secret (both or neither).
func hookOf(url, secret string) (*fsm.Hook, error) {
	if url == "" {
		if secret != "" {
			return nil, invalid("webhook_secret", "given without webhook_url")
		}
		return nil, nil
	}
	if err := webhook.CheckURL(url); err != nil {
		return nil, invalid("webhook_url", "%v", err)
	}
	if len(secret) < 16 || len(secret) > 256 {
		return nil, invalid("webhook_secret", "must be 16 to 256 bytes (the key its POSTs are signed with)")
	}
	return &fsm.Hook{URL: url, Secret: secret}, nil
}

// maxHighlightsPerCall bounds one AddHighlights (montagectl sends a big
// file in parts, checked whole beforehand).
const maxHighlightsPerCall = 5000

func (s *Server) AddHighlights(_ context.Context, req *connect.Request[montagev1.AddHighlightsRequest]) (*connect.Response[montagev1.AddHighlightsResponse], error) {
	hs := req.Msg.GetHighlights()
	if len(hs) == 0 {
		return nil, invalid("highlights", "at least one is required")
	}
	if len(hs) > maxHighlightsPerCall {
		return nil, invalid("highlights", "at most %d in one call, got %d", maxHighlightsPerCall, len(hs))
	}
	lines := req.Msg.GetLines()
	var errs library.Errors
	cmd := &fsm.HighlightsCmd{}
	for i, h := range hs {
		line := i + 1
		if i < len(lines) {
			line = int(lines[i])
		}
		row, err := library.Check(line, library.Fields{Streamer: h.GetStreamer(), URL: h.GetUrl(), At: h.GetAt(), Duration: h.GetDuration(),
			Title: h.GetTitle(), Date: h.GetDate(), Score: fmt.Sprint(h.GetScore()), Tags: h.GetTags()})
		if err != nil {
			errs = append(errs, err.(library.RowError))
			continue
		}
		cmd.Upsert = append(cmd.Upsert, highlightOf(row, ""))
	}
	if len(errs) > 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errs)
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	resp, err := s.apply(&fsm.Command{Highlights: cmd})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.AddHighlightsResponse{Added: int32(resp.Added), Updated: int32(resp.Updated), Unchanged: int32(resp.Unchanged)}), nil
}

func highlightOf(r library.Row, feed string) *fsm.Highlight {
	return &fsm.Highlight{ID: library.ID(r.URL, r.At), Streamer: r.Streamer, URL: r.URL, At: r.At, Duration: r.Duration, Title: r.Title,
		Date: r.Date, Score: r.Score, Tags: r.Tags, Feed: feed}
}

func parseDay(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, invalid(field, "must be YYYY-MM-DD, got %q", v)
	}
	return d, nil
}

func (s *Server) ListHighlights(_ context.Context, req *connect.Request[montagev1.ListHighlightsRequest]) (*connect.Response[montagev1.ListHighlightsResponse], error) {
	m := req.Msg
	since, err := parseDay("since", m.GetSince())
	if err != nil {
		return nil, err
	}
	until, err := parseDay("until", m.GetUntil())
	if err != nil {
		return nil, err
	}
	limit := int(m.GetLimit())
	if limit <= 0 || limit > 100_000 {
		limit = 1000
	}
	tag := strings.ToLower(m.GetTag())
	var found []*fsm.Highlight
	s.node.View(func(st *fsm.State) {
		st.HighlightsOf(m.GetStreamer(), func(h *fsm.Highlight) {
			day := recurring.When(h, time.UTC)
			if !since.IsZero() && day.Before(since) || !until.IsZero() && day.After(until.Add(24*time.Hour-time.Nanosecond)) {
				return
			}
			if tag != "" && !slices.Contains(h.Tags, tag) {
				return
			}
			found = append(found, h) // records are replaced, never changed: safe to read after
		})
	})
	out := &montagev1.ListHighlightsResponse{Total: int32(len(found))}
	// Newest first; a partial sort is enough for the page asked.
	newest := func(a, b *fsm.Highlight) int {
		return cmp.Or(recurring.When(b, time.UTC).Compare(recurring.When(a, time.UTC)), strings.Compare(a.Streamer, b.Streamer),
			cmp.Compare(a.At, b.At), strings.Compare(a.ID, b.ID))
	}
	slices.SortFunc(found, newest)
	for _, h := range found[:min(limit, len(found))] {
		out.Highlights = append(out.Highlights, highlightProto(h))
	}
	return connect.NewResponse(out), nil
}

func highlightProto(h *fsm.Highlight) *montagev1.LibraryHighlight {
	return &montagev1.LibraryHighlight{Id: h.ID, Streamer: h.Streamer, Url: h.URL, At: spec.FormatTimestamp(h.At),
		Duration: spec.FormatTimestamp(h.Duration), Title: h.Title, Date: h.Date, Score: h.Score, Tags: h.Tags,
		AddedAt: timestamppb.New(h.AddedAt), Feed: h.Feed, AtSeconds: h.At, DurationSeconds: h.Duration}
}

func (s *Server) RemoveHighlights(_ context.Context, req *connect.Request[montagev1.RemoveHighlightsRequest]) (*connect.Response[montagev1.RemoveHighlightsResponse], error) {
	ids := req.Msg.GetIds()
	if len(ids) == 0 || len(ids) > maxHighlightsPerCall {
		return nil, invalid("ids", "give 1 to %d highlight ids", maxHighlightsPerCall)
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	resp, err := s.apply(&fsm.Command{Highlights: &fsm.HighlightsCmd{Remove: ids}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.RemoveHighlightsResponse{Removed: int32(resp.Removed)}), nil
}

func (s *Server) AddFeed(_ context.Context, req *connect.Request[montagev1.AddFeedRequest]) (*connect.Response[montagev1.AddFeedResponse], error) {
	m := req.Msg
	if !recurring.ValidName(m.GetName()) {
		return nil, invalid("name", "must be 1-64 letters, digits, '.', '_' or '-', got %q", m.GetName())
	}
	if err := webhook.CheckURL(m.GetUrl()); err != nil {
		return nil, invalid("url", "%v", err)
	}
	every := time.Duration(m.GetEverySeconds() * float64(time.Second))
	if every < time.Minute || every > 7*24*time.Hour {
		return nil, invalid("every", "must be between 1m and 7d, got %s", every)
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	f := &fsm.Feed{Name: m.GetName(), URL: m.GetUrl(), Every: every, CreatedAt: now, NextPoll: now}
	if _, err := s.apply(&fsm.Command{Feed: &fsm.FeedCmd{Add: f}}); err != nil {
		return nil, err
	}
	s.kickFeeds()
	return connect.NewResponse(&montagev1.AddFeedResponse{Feed: feedProto(f)}), nil
}

func feedProto(f *fsm.Feed) *montagev1.Feed {
	return &montagev1.Feed{Name: f.Name, Url: f.URL, EverySeconds: f.Every.Seconds(), LastPoll: tsOrNil(f.LastPoll), NextPoll: tsOrNil(f.NextPoll),
		LastError: f.LastError, Failures: int32(f.Failures), Polls: int32(f.Polls), NotModified: int32(f.NotModified), Rows: int32(f.Rows), Etag: f.ETag}
}

func tsOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (s *Server) ListFeeds(context.Context, *connect.Request[montagev1.ListFeedsRequest]) (*connect.Response[montagev1.ListFeedsResponse], error) {
	out := &montagev1.ListFeedsResponse{}
	s.node.View(func(st *fsm.State) {
		for _, f := range st.Feeds {
			out.Feeds = append(out.Feeds, feedProto(f))
		}
	})
	slices.SortFunc(out.Feeds, func(a, b *montagev1.Feed) int { return strings.Compare(a.GetName(), b.GetName()) })
	return connect.NewResponse(out), nil
}

func (s *Server) RemoveFeed(_ context.Context, req *connect.Request[montagev1.RemoveFeedRequest]) (*connect.Response[montagev1.RemoveFeedResponse], error) {
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	if _, err := s.apply(&fsm.Command{Feed: &fsm.FeedCmd{Remove: req.Msg.GetName()}}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.RemoveFeedResponse{}), nil
}

func (s *Server) AddSchedule(_ context.Context, req *connect.Request[montagev1.AddScheduleRequest]) (*connect.Response[montagev1.AddScheduleResponse], error) {
	p := req.Msg.GetSchedule()
	if p == nil {
		return nil, invalid("schedule", "is required")
	}
	m := &fsm.MontageSchedule{Name: p.GetName(), Cron: p.GetCron(), TimeZone: p.GetTz(), Window: time.Duration(p.GetWindowSeconds() * float64(time.Second)),
		Group: p.GetGroup(), Streamers: p.GetStreamers(), MinScore: p.GetMinScore(), MaxHighlights: int(p.GetMaxHighlights()),
		Order: p.GetOrder(), NameTemplate: p.GetNameTemplate(), CatchUp: p.GetCatchUp()}
	for _, t := range p.GetTags() {
		m.Tags = append(m.Tags, strings.ToLower(strings.TrimSpace(t)))
	}
	if p.Seed != nil {
		m.HasSeed, m.Seed = true, p.GetSeed()
	}
	if pr := p.GetProfile(); pr != nil {
		if _, err := spec.ResolveProfile(pr); err != nil {
			var fe *spec.FieldError
			if errors.As(err, &fe) {
				return nil, invalid("schedule.profile."+strings.TrimPrefix(fe.Field, "profile."), "%s", fe.Reason)
			}
			return nil, invalid("schedule.profile", "%v", err)
		}
		m.Profile, _ = proto.MarshalOptions{Deterministic: true}.Marshal(pr)
	}
	if err := recurring.Check(m); err != nil {
		var fe *recurring.FieldError
		if errors.As(err, &fe) {
			return nil, invalid("schedule."+fe.Field, "%s", fe.Reason)
		}
		return nil, invalid("schedule", "%v", err)
	}
	hook, err := hookOf(p.GetWebhookUrl(), p.GetWebhookSecret())
	if err != nil {
		return nil, err
	}
	m.Webhook = hook
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	m.CreatedAt = s.clock.Now().UTC()
	if _, err := s.apply(&fsm.Command{MontageSchedule: &fsm.MontageScheduleCmd{Add: m}}); err != nil {
		return nil, err
	}
	s.log.Info("montage schedule added", "schedule", m.Name, "cron", m.Cron, "tz", m.TimeZone, "group", m.Group)
	return connect.NewResponse(&montagev1.AddScheduleResponse{Schedule: s.scheduleProto(m)}), nil
}

func (s *Server) scheduleProto(m *fsm.MontageSchedule) *montagev1.MontageSchedule {
	out := &montagev1.MontageSchedule{Name: m.Name, Cron: m.Cron, Tz: m.TimeZone, WindowSeconds: m.Window.Seconds(), Group: m.Group,
		Streamers: m.Streamers, Tags: m.Tags, MinScore: m.MinScore, MaxHighlights: int32(m.MaxHighlights), Order: m.Order,
		NameTemplate: m.NameTemplate, CatchUp: m.CatchUp, Paused: m.Paused, CreatedAt: tsOrNil(m.CreatedAt), LastSlot: tsOrNil(m.LastSlot)}
	if m.HasSeed {
		out.Seed = proto.Int64(m.Seed)
	}
	if m.Webhook != nil {
		out.WebhookUrl = m.Webhook.URL // never the secret
	}
	if len(m.Profile) > 0 {
		out.Profile = &montagev1.RenderProfile{}
		_ = proto.Unmarshal(m.Profile, out.Profile) // written by AddSchedule from a valid message
	}
	if c, loc, err := recurring.Cron(m.Cron, m.TimeZone); err == nil {
		from := s.clock.Now()
		if m.LastSlot.After(from) {
			from = m.LastSlot
		}
		out.NextSlot = timestamppb.New(c.Next(from.In(loc)))
	}
	for _, f := range m.History {
		out.History = append(out.History, fireProto(f))
	}
	return out
}

func fireProto(f fsm.Fire) *montagev1.ScheduleFire {
	return &montagev1.ScheduleFire{Slot: timestamppb.New(f.Slot), FiredAt: timestamppb.New(f.At), JobIds: f.Jobs, Note: f.Note, Manual: f.Manual}
}

func (s *Server) ListSchedules(context.Context, *connect.Request[montagev1.ListSchedulesRequest]) (*connect.Response[montagev1.ListSchedulesResponse], error) {
	var all []*fsm.MontageSchedule
	s.node.View(func(st *fsm.State) {
		for _, m := range st.MontageSchedules {
			all = append(all, m)
		}
	})
	slices.SortFunc(all, func(a, b *fsm.MontageSchedule) int { return strings.Compare(a.Name, b.Name) })
	out := &montagev1.ListSchedulesResponse{}
	for _, m := range all {
		out.Schedules = append(out.Schedules, s.scheduleProto(m))
	}
	return connect.NewResponse(out), nil
}

func (s *Server) SetSchedulePaused(_ context.Context, req *connect.Request[montagev1.SetSchedulePausedRequest]) (*connect.Response[montagev1.SetSchedulePausedResponse], error) {
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	c := &fsm.MontageScheduleCmd{Resume: req.Msg.GetName()}
	if req.Msg.GetPaused() {
		c = &fsm.MontageScheduleCmd{Pause: req.Msg.GetName()}
	}
	if req.Msg.GetName() == "" {
		return nil, invalid("name", "is required")
	}
	if _, err := s.apply(&fsm.Command{MontageSchedule: c}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.SetSchedulePausedResponse{}), nil
}

func (s *Server) RemoveSchedule(_ context.Context, req *connect.Request[montagev1.RemoveScheduleRequest]) (*connect.Response[montagev1.RemoveScheduleResponse], error) {
	if req.Msg.GetName() == "" {
		return nil, invalid("name", "is required")
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	if _, err := s.apply(&fsm.Command{MontageSchedule: &fsm.MontageScheduleCmd{Remove: req.Msg.GetName()}}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.RemoveScheduleResponse{}), nil
}

func (s *Server) RunSchedule(_ context.Context, req *connect.Request[montagev1.RunScheduleRequest]) (*connect.Response[montagev1.RunScheduleResponse], error) {
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	var m *fsm.MontageSchedule
	s.node.View(func(st *fsm.State) { m = st.MontageSchedules[req.Msg.GetName()] })
	if m == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("schedule %q: %w", req.Msg.GetName(), fsm.ErrNotFound))
	}
	at := s.clock.Now()
	if req.Msg.GetAt() != nil {
		at = req.Msg.GetAt().AsTime()
	}
	slot, err := recurring.SlotAt(m, at)
	if err != nil {
		return nil, invalid("at", "%v", err)
	}
	f, err := s.fireSlot(m.Name, slot, true, 0)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.RunScheduleResponse{Fire: fireProto(*f)}), nil
}

func (s *Server) ListMontages(_ context.Context, req *connect.Request[montagev1.ListMontagesRequest]) (*connect.Response[montagev1.ListMontagesResponse], error) {
	m := req.Msg
	since, err := parseDay("since", m.GetSince())
	if err != nil {
		return nil, err
	}
	limit := int(m.GetLimit())
	if limit <= 0 || limit > 10_000 {
		limit = 1000
	}
	var found []*fsm.Montage
	s.node.View(func(st *fsm.State) {
		for _, c := range st.Catalog {
			if m.GetSchedule() != "" && (c.Origin == nil || c.Origin.Schedule != m.GetSchedule()) {
				continue
			}
			if m.GetStreamer() != "" && (c.Origin == nil || !slices.Contains(c.Origin.Streamers, m.GetStreamer())) {
				continue
			}
			if !since.IsZero() && c.FinishedAt.Before(since) {
				continue
			}
			found = append(found, c)
		}
	})
	slices.SortFunc(found, func(a, b *fsm.Montage) int {
		return cmp.Or(b.FinishedAt.Compare(a.FinishedAt), strings.Compare(a.JobID, b.JobID))
	})
	out := &montagev1.ListMontagesResponse{}
	for _, c := range found[:min(limit, len(found))] {
		out.Montages = append(out.Montages, montageProto(c))
	}
	return connect.NewResponse(out), nil
}

func montageProto(c *fsm.Montage) *montagev1.Montage {
	out := &montagev1.Montage{JobId: c.JobID, Name: c.Name, DurationSeconds: c.Duration, SizeBytes: c.Size, Outputs: c.Outputs,
		FinishedAt: tsOrNil(c.FinishedAt), MediaExpiredAt: tsOrNil(c.MediaExpiredAt)}
	if o := c.Origin; o != nil {
		out.Schedule, out.Slot, out.Streamers, out.WindowFrom, out.WindowTo = o.Schedule, tsOrNil(o.Slot), o.Streamers, tsOrNil(o.From), tsOrNil(o.To)
	}
	for _, h := range c.Highlights {
		out.Highlights = append(out.Highlights, &montagev1.CatalogHighlight{Url: h.URL, AtSeconds: h.At, DurationSeconds: h.Duration, Title: h.Title})
	}
	for _, ch := range c.Chapters {
		out.Chapters = append(out.Chapters, &montagev1.Chapter{Title: ch.Title, StartSeconds: ch.Start})
	}
	return out
}

func (s *Server) GetMontage(_ context.Context, req *connect.Request[montagev1.GetMontageRequest]) (*connect.Response[montagev1.GetMontageResponse], error) {
	var c *fsm.Montage
	s.node.View(func(st *fsm.State) { c = st.Catalog[req.Msg.GetJobId()] })
	if c == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("montage %q is not in the catalog (only finished montages are)", req.Msg.GetJobId()))
	}
	return connect.NewResponse(&montagev1.GetMontageResponse{Montage: montageProto(c)}), nil
}
