package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stream-montages/montage/coordinator/auth"
	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/coordinator/sched"
	"github.com/stream-montages/montage/internal/multipart"
	"github.com/stream-montages/montage/internal/spec"
	"github.com/stream-montages/montage/internal/version"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func checkAgentID(id string) error {
	if id == "" || len(id) > 64 {
		return invalid("agent_id", "must be 1..64 characters")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return invalid("agent_id", "may hold only letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

// checkStatus refuses an agent's summary of itself that metrics could not
// show: numbers that are not finite or negative, an encoder name that is
// not one.
func checkStatus(st *montagev1.AgentStatus) error {
	if st == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"status.speed", st.GetSpeed()}, {"status.fps", st.GetFps()}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || f.v > 1e6 {
			return invalid(f.name, "must be a number between 0 and 1000000, got %v", f.v)
		}
	}
	if st.GetSlots() < 0 || st.GetBusySlots() < 0 || st.GetBusySlots() > 256 || st.GetGpuSessionsBusy() < 0 || st.GetDiskFreeBytes() < 0 {
		return invalid("status", "slot, session and byte counts must not be negative (busy_slots at most 256)")
	}
	if e := st.GetEncoder(); len(e) > 64 || strings.ContainsFunc(e, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		return invalid("status.encoder", "must be an encoder name like libx264 (a-z, 0-9, _ and -, at most 64), got %q", e)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// checkMetricsAddr accepts where an agent serves metrics: host:port, or
// empty when it does not.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalid("metrics_addr", "must be host:port, got %q: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return invalid("metrics_addr", "port must be 1 to 65535, got %q", port)
	}
	if host == "" || strings.ContainsAny(host, "/ ") || len(addr) > 255 {
		return invalid("metrics_addr", "must name a host the coordinators' Prometheus can reach, got %q", addr)
	}
	return nil
}

// Register adds or updates an agent.
func (s *Server) Register(_ context.Context, req *connect.Request[montagev1.RegisterRequest]) (*connect.Response[montagev1.RegisterResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	if m.GetSlots() < 1 || m.GetSlots() > 256 {
		return nil, invalid("slots", "must be between 1 and 256, got %d", m.GetSlots())
	}
	if err := checkMetricsAddr(m.GetMetricsAddr()); err != nil {
		return nil, err
	}
	protocol := max(1, m.GetProtocol()) // agents older than the field speak 1
	if protocol < version.MinProtocol || protocol > version.Protocol {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"agent %s (release %s) speaks agent protocol %d; this coordinator (release %s) speaks %d to %d: run agents and coordinators of the same release",
			m.GetAgentId(), orUnknown(m.GetVersion()), protocol, version.Version, version.MinProtocol, version.Protocol))
	}
	if len(m.GetVersion()) > 64 {
		return nil, invalid("version", "must be at most 64 characters")
	}
	tz := m.GetTimeZone()
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || len(tz) > 64 {
			return nil, invalid("time_zone", "%q is not an IANA time zone (e.g. Europe/Berlin)", tz)
		}
	}
	var enroll string
	if tok := m.GetEnrollToken(); tok != "" {
		enroll = auth.CredentialHash(tok)
	}
	caps, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.GetCapabilities())
	if err != nil {
		return nil, invalid("capabilities", "%v", err)
	}
	name := m.GetName()
	if name == "" {
		name = m.GetAgentId()
	}
	secret := m.GetCredential()
	var hash string
	if secret != "" {
		hash = auth.CredentialHash(secret)
	}
	if !s.cfg.Tokens.Open() {
		if len(secret) < auth.MinSecret || strings.Contains(secret, ".") {
			return nil, invalid("credential", "must be at least %d characters without dots (the agent makes it at its first start)", auth.MinSecret)
		}
		// Knowing the join token is not enough to take over an id that is
		// registered: only its own secret is.
		if old := s.credentialHash(m.GetAgentId()); old != "" && !hmac.Equal([]byte(old), []byte(hash)) {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
				"agent id %s is registered with another credential: an agent proves it is %s with the credential in its data directory; "+
					"to give the id to another PC, an operator removes it first (montagectl agent remove %s)", m.GetAgentId(), m.GetAgentId(), m.GetAgentId()))
		}
	}
	a := &fsm.Agent{ID: m.GetAgentId(), Name: name, Capabilities: caps, Slots: int(m.GetSlots()), Labels: m.GetLabels(),
		Provides: provides(m.GetCapabilities()), GPUSessions: int(m.GetCapabilities().GetGpuSessions()), CredentialHash: hash,
		MetricsAddr: m.GetMetricsAddr(), Version: m.GetVersion(), Protocol: int(protocol), TimeZone: tz}
	if _, err := s.apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: a, Enroll: enroll}}); err != nil {
		return nil, err
	}
	var out *montagev1.Agent
	s.node.View(func(st *fsm.State) {
		if a := st.Agents[m.GetAgentId()]; a != nil {
			out = agentProto(a)
		}
	})
	s.lead.Seen(a.ID)
	out.LastSeen = timestamppb.New(s.clock.Now())
	s.log.Info("agent registered", "agent", a.ID, "name", name, "slots", a.Slots)
	return connect.NewResponse(&montagev1.RegisterResponse{Agent: out, Coordinators: s.coordinatorURLs(),
		AgentCredential: credentialFor(s.cfg.Tokens, a.ID, secret)}), nil
}

func credentialFor(t auth.Tokens, id, secret string) string {
	if t.Open() {
		return ""
	}
	return auth.Credential(id, secret)
}

// provides turns what an agent proved at start into the names tasks require.
func provides(c *montagev1.AgentCapabilities) []string {
	out := append([]string(nil), c.GetEncoders()...)
	if c.GetYtdlpVersion() != "" {
		out = append(out, planner.NeedsYTDLP)
	}
	if c.GetDrawtext() {
		out = append(out, planner.NeedsDrawtext)
	}
	if c.GetTranscribeModel() != "" {
		out = append(out, planner.NeedsTranscribe)
	}
	if c.GetBurnSubtitles() {
		out = append(out, planner.NeedsSubtitles)
	}
	return out
}

// LeaseTask grants up to free_slots runnable tasks, waiting for work up to
// wait_seconds (a long poll), woken by every raft apply.
func (s *Server) LeaseTask(ctx context.Context, req *connect.Request[montagev1.LeaseTaskRequest]) (*connect.Response[montagev1.LeaseTaskResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	if m.GetFreeSlots() < 0 || m.GetFreeSlots() > 256 {
		return nil, invalid("free_slots", "must be between 0 and 256")
	}
	if m.GetFreeGpuSessions() < 0 || m.GetFreeGpuSessions() > 256 {
		return nil, invalid("free_gpu_sessions", "must be between 0 and 256")
	}
	if m.GetFreeDiskBytes() < 0 {
		return nil, invalid("free_disk_bytes", "must not be negative")
	}
	wait := time.Duration(m.GetWaitSeconds() * float64(time.Second))
	if wait < 0 {
		return nil, invalid("wait_seconds", "must not be negative")
	}
	if wait > s.cfg.MaxLeaseWait {
		wait = s.cfg.MaxLeaseWait
	}
	slots := -1
	var provides []string
	s.node.View(func(st *fsm.State) {
		if a := st.Agents[m.GetAgentId()]; a != nil {
			slots, provides = a.Slots, slices.Clone(a.Provides)
		}
	})
	if slots < 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("agent %s is not registered; register first", m.GetAgentId()))
	}
	if int(m.GetFreeSlots()) > slots {
		return nil, invalid("free_slots", "%d is more than the %d slots agent %s registered", m.GetFreeSlots(), slots, m.GetAgentId())
	}
	if err := checkStatus(m.GetStatus()); err != nil {
		return nil, err
	}
	if err := checkKeptJobs(m.GetKeptJobs()); err != nil {
		return nil, err
	}
	s.lead.Seen(m.GetAgentId())
	s.statuses.set(m.GetAgentId(), m.GetStatus())
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	s.kept.set(m.GetAgentId(), m.GetKeptJobs()) // the leader's alone: it schedules
	// Grants the agent never received (a response lost on its way) go
	// out again before anything new: the agent lists what it holds.
	if m.GetHeldListed() {
		if lost := s.redeliver(m.GetAgentId(), m.GetHeld(), int(m.GetFreeSlots())); len(lost) > 0 {
			return connect.NewResponse(&montagev1.LeaseTaskResponse{Leases: lost}), nil
		}
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		if err := s.requireLeader(); err != nil {
			return nil, err
		}
		// Registered before the evaluation, so that work arriving between
		// the two is not missed; only work this agent could take wakes it.
		woken, cancel := s.node.WaitWork(m.GetAgentId(), provides)
		leases, waitUntil, err := s.grant(m.GetAgentId(), int(m.GetFreeSlots()), int(m.GetFreeGpuSessions()), m.GetFreeDiskBytes())
		if err != nil {
			cancel()
			return nil, err
		}
		// Each evaluation is logged: a test proves that nothing was granted
		// by the evaluation that came after the event it waits for.
		s.log.Debug("lease poll evaluated", "agent", m.GetAgentId(), "granted", len(leases))
		if len(leases) > 0 {
			cancel()
			return connect.NewResponse(&montagev1.LeaseTaskResponse{Leases: leases}), nil
		}
		// A concat left for an agent keeping its segments is this
		// agent's to take if that agent has not come for it by then.
		var stopWaiting <-chan time.Time
		if !waitUntil.IsZero() {
			stopWaiting = s.clock.After(max(0, waitUntil.Sub(s.clock.Now())))
		}
		select {
		case <-ctx.Done():
			cancel()
			return connect.NewResponse(&montagev1.LeaseTaskResponse{}), nil
		case <-deadline.C:
			cancel()
			return connect.NewResponse(&montagev1.LeaseTaskResponse{}), nil
		case <-woken:
		case <-stopWaiting:
			cancel()
		}
	}
}

// checkKeptJobs bounds an agent's list of kept jobs.
func checkKeptJobs(jobs []string) error {
	if len(jobs) > maxKeptJobs {
		return invalid("kept_jobs", "lists %d jobs; an agent keeps at most %d", len(jobs), maxKeptJobs)
	}
	for i, j := range jobs {
		if j == "" || len(j) > 64 {
			return invalid(fmt.Sprintf("kept_jobs[%d]", i), "must be a job id of 1..64 characters")
		}
	}
	return nil
}

// grant picks tasks by policy and commits each grant through raft. A pick
// that another grant raced to is skipped (Apply re-checks runnability).
// waitUntil, when not zero, is when a concat left for an agent keeping its
// segments would be this agent's to take.
func (s *Server) grant(agentID string, n, gpu int, freeDisk int64) (_ []*montagev1.Lease, waitUntil time.Time, _ error) {
	// Agents asking at once must not all pick the same task: what one
	// picked is claimed until its grant is decided, and others pass over
	// it. Without this, every agent woken by one new task proposes a grant
	// of it and all but one go back to waiting empty-handed.
	s.claimMu.Lock()
	var picks []string
	s.node.View(func(st *fsm.State) {
		if a := st.Agents[agentID]; a != nil && !openAt(a, s.clock.Now()) {
			return // outside its schedule: no new work
		}
		picks = sched.Pick(st, sched.Ask{Agent: agentID, Slots: n, GPU: gpu, FreeDisk: freeDisk, Online: s.lead.Online,
			Skip:    func(id string) bool { return s.claims[id] },
			Keepers: s.kept.of, Affinity: s.cfg.ConcatAffinity, Now: s.clock.Now(),
			Waits: func(id string, until time.Time) {
				s.log.Debug("concat waits for an agent keeping its segments", "task", id, "agent", agentID, "until", until)
				if waitUntil.IsZero() || until.Before(waitUntil) {
					waitUntil = until
				}
			}})
	})
	for _, id := range picks {
		s.claims[id] = true
	}
	s.claimMu.Unlock()
	defer func() {
		s.claimMu.Lock()
		for _, id := range picks {
			delete(s.claims, id)
		}
		s.claimMu.Unlock()
	}()
	var out []*montagev1.Lease
	for _, id := range picks {
		typ, ready := s.readySince(id)
		resp, err := s.apply(&fsm.Command{Grant: &fsm.GrantCmd{TaskID: id, AgentID: agentID}})
		if err != nil {
			if connect.CodeOf(err) == connect.CodeFailedPrecondition {
				continue
			}
			return out, waitUntil, err
		}
		s.leases.Track(id, agentID, resp.Token, s.clock.Now())
		s.m.granted.Inc()
		if !ready.IsZero() {
			s.m.queueWait.WithLabelValues(typ).Observe(max(0, s.clock.Now().Sub(ready).Seconds()))
		}
		l, err := s.buildLease(id, resp.Token)
		if err != nil {
			// The grant is committed but cannot be sent: give it back at
			// once, without using an attempt (the task did nothing wrong).
			s.log.Error("build lease; task handed back", "task", id, "err", err)
			s.handBack(id, agentID, resp.Token, "the coordinator could not prepare the lease: "+err.Error())
			continue
		}
		out = append(out, l)
	}
	return out, waitUntil, nil
}

// handBack requeues a lease without using an attempt or counting a failure.
func (s *Server) handBack(taskID, agentID string, token uint64, why string) {
	if _, err := s.apply(&fsm.Command{Fail: &fsm.FailCmd{TaskID: taskID, AgentID: agentID, Token: token, Error: why, Handback: true}}); err != nil {
		s.log.Warn("hand back", "task", taskID, "err", err)
		return
	}
	s.leases.Drop(taskID)
	s.ended(s.taskFacts(taskID), "handed_back", 0, "")
}

// redeliver finds the leases this leader times for agentID that the agent
// does not list as held: their grant never reached it. Up to free of them
// are built and sent again (same token, no attempt used); the rest are
// handed back to the queue.
func (s *Server) redeliver(agentID string, held []*montagev1.LeaseProgress, free int) []*montagev1.Lease {
	has := map[string]uint64{}
	for _, h := range held {
		has[h.GetTaskId()] = h.GetToken()
	}
	var out []*montagev1.Lease
	for _, e := range s.leases.Holding(agentID) {
		if tok, ok := has[e.TaskID]; ok && tok == e.Token {
			continue
		}
		if _, err := s.checkFence(e.TaskID, agentID, e.Token); err != nil {
			continue // ended meanwhile
		}
		if len(out) >= free {
			s.handBack(e.TaskID, agentID, e.Token, "the agent never received its grant and has no free slot for it")
			continue
		}
		l, err := s.buildLease(e.TaskID, e.Token)
		if err != nil {
			s.handBack(e.TaskID, agentID, e.Token, "the coordinator could not prepare the lease again: "+err.Error())
			continue
		}
		s.log.Info("lease sent again: the agent never received it", "task", e.TaskID, "agent", agentID, "token", e.Token)
		out = append(out, l)
	}
	return out
}

func (s *Server) buildLease(taskID string, token uint64) (*montagev1.Lease, error) {
	type transcriptOf struct {
		index int
		res   fsm.Result
	}
	var (
		l           *montagev1.Lease
		segs        []*fsm.Task
		transcripts []transcriptOf
		burn        *transcriptOf
		subs, lang  string
		err         error
		expected    float64
	)
	s.node.View(func(st *fsm.State) {
		t := st.Tasks[taskID]
		if t == nil || st.Jobs[t.JobID] == nil || t.LeaseToken != token {
			err = fmt.Errorf("task %s changed before its lease was sent", taskID)
			return
		}
		j := st.Jobs[t.JobID]
		prof := &montagev1.RenderProfile{}
		if e := proto.Unmarshal(j.Profile, prof); e != nil {
			err = fmt.Errorf("job %s profile: %w", j.ID, e)
			return
		}
		expected = t.ExpectedSeconds
		l = &montagev1.Lease{
			ExpectedBytes:           t.ExpectedBytes,
			TaskId:                  t.ID,
			JobId:                   j.ID,
			Token:                   token,
			Attempt:                 int32(t.Attempts),
			Type:                    t.Type,
			TtlSeconds:              s.cfg.LeaseTTL.Seconds(),
			Profile:                 prof,
			MultipartThresholdBytes: s.cfg.MultipartThreshold,
			ChecksummedUpload:       s.store.Checksums(),
			PartSizeBytes:           s.cfg.PartSize,
		}
		switch t.Type {
		case montagev1.TaskType_TASK_TYPE_RENDER:
			r := t.Render
			l.Render = &montagev1.RenderInput{SourceUrl: st.SourceOf(t), StartSeconds: r.Start, DurationSeconds: r.Duration, Title: r.Title,
				SourceType: r.SourceType, FadeIn: r.FadeIn, FadeOut: r.FadeOut, OverlayTitle: r.OverlayTitle, TitleSeconds: r.TitleSeconds,
				SnapStart: r.SnapStart, SnapEnd: r.SnapEnd, HighlightStartSeconds: r.HighlightStart}
			if e := st.Cache[t.CacheEntry]; e != nil && e.Identity != "" {
				l.Render.CachedIdentity = e.Identity
			}
			l.SegmentIndex, l.SegmentCount = segmentOf(st, j, t.ID)
			if r.Burn != "" {
				tr := st.Tasks[r.Burn]
				if tr == nil || tr.State != montagev1.TaskState_TASK_STATE_SUCCEEDED || tr.Result == nil {
					err = fmt.Errorf("task %s burns the transcript of %s, which has none", t.ID, r.Burn)
					return
				}
				burn = &transcriptOf{index: tr.HighlightIndex, res: *tr.Result}
			}
			l.OutputKey = resultKey(t)
		case montagev1.TaskType_TASK_TYPE_TRANSCRIBE:
			sp := &montagev1.JobSpec{}
			_ = proto.Unmarshal(j.Spec, sp) // written by SubmitJob from a valid message
			r := t.Render
			l.Transcribe = &montagev1.TranscribeInput{SourceUrl: st.SourceOf(t), SourceType: r.SourceType, StartSeconds: r.Start,
				DurationSeconds: r.Duration, Language: sp.GetLanguage(), Prompt: sp.GetPrompt()}
			l.OutputKey = resultKey(t)
		case montagev1.TaskType_TASK_TYPE_CONCAT:
			sp := &montagev1.JobSpec{}
			_ = proto.Unmarshal(j.Spec, sp)
			for _, d := range t.DependsOn {
				if dt := st.Tasks[d]; dt.Type == montagev1.TaskType_TASK_TYPE_TRANSCRIBE {
					if dt.State == montagev1.TaskState_TASK_STATE_SUCCEEDED && dt.Result != nil {
						transcripts = append(transcripts, transcriptOf{index: dt.HighlightIndex, res: *dt.Result})
					}
					continue
				}
				c := *st.Tasks[d]
				if c.Result != nil {
					r := *c.Result
					c.Result = &r
				}
				if c.Render != nil {
					r := *c.Render
					r.URL = st.SourceOf(&c)
					c.Render = &r
				}
				segs = append(segs, &c)
			}
			l.OutputKey = resultKey(t)
			extras := concatExtras
			if sp.GetTranscribe() {
				extras = append(slices.Clone(extras), subtitleExtras...)
				subs, lang = sp.GetSubtitles(), sp.GetLanguage()
				if subs == "" {
					subs = spec.SubtitlesSidecar
				}
			}
			for _, name := range extras {
				l.ExtraOutputs = append(l.ExtraOutputs, &montagev1.OutputSlot{Name: name, Key: blob.OutputAttemptKey(j.ID, name, token)})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	ttl := urlTTL(expected)
	if r := l.GetRender(); r != nil && strings.HasPrefix(strings.ToLower(r.SourceUrl), "s3:") {
		u, err := s.presignSource(r.SourceUrl, ttl)
		if err != nil {
			return nil, err
		}
		r.SourceUrl = u
	}
	if burn != nil {
		u, err := s.store.PresignGet(burn.res.Key, ttl)
		if err != nil {
			return nil, fmt.Errorf("presign %s: %w", burn.res.Key, err)
		}
		l.Render.BurnSubtitles = &montagev1.TranscriptRef{HighlightIndex: int32(burn.index), Url: u, Sha256: burn.res.SHA256, Size: burn.res.Size}
	}
	if r := l.GetTranscribe(); r != nil && strings.HasPrefix(strings.ToLower(r.SourceUrl), "s3:") {
		u, err := s.presignSource(r.SourceUrl, ttl)
		if err != nil {
			return nil, err
		}
		r.SourceUrl = u
	}
	if len(segs) > 0 {
		l.Concat = &montagev1.ConcatInput{Subtitles: subs, Language: lang}
		for _, tr := range transcripts {
			u, err := s.store.PresignGet(tr.res.Key, ttl)
			if err != nil {
				return nil, fmt.Errorf("presign %s: %w", tr.res.Key, err)
			}
			l.Concat.Transcripts = append(l.Concat.Transcripts, &montagev1.TranscriptRef{HighlightIndex: int32(tr.index), Url: u,
				Sha256: tr.res.SHA256, Size: tr.res.Size})
		}
		for _, c := range segs {
			if c.Result == nil {
				return nil, fmt.Errorf("concat %s: segment %s has no result", taskID, c.ID)
			}
			u, err := s.store.PresignGet(c.Result.Key, ttl)
			if err != nil {
				return nil, fmt.Errorf("presign %s: %w", c.Result.Key, err)
			}
			facts := &montagev1.SourceFacts{}
			_ = proto.Unmarshal(c.Result.Source, facts) // written by CompleteTask from a valid message
			role := c.Role
			if role == "" {
				role = "highlight"
			}
			l.Concat.Segments = append(l.Concat.Segments, &montagev1.ConcatSegment{
				Url: u, Title: c.Render.Title, DurationSeconds: c.Result.Duration,
				HighlightIndex: int32(c.HighlightIndex), Role: role, SourceUrl: c.Render.URL, SourceStartSeconds: c.Render.Start,
				Chunk: int32(c.Chunk), Chunks: int32(max(1, c.Chunks)), Source: facts, Cached: c.Cached,
				Sha256: c.Result.SHA256, Size: c.Result.Size,
			})
		}
		if len(l.Concat.Segments) > s.cfg.InlineConcatInputs {
			if err := s.concatInputsObject(l, token); err != nil {
				return nil, err
			}
		}
	}
	for _, x := range l.ExtraOutputs {
		u, err := s.store.PresignPut(x.Key, ttl)
		if err != nil {
			return nil, fmt.Errorf("presign %s: %w", x.Key, err)
		}
		x.PutUrl = u
	}
	u, err := s.store.PresignPut(l.OutputKey, ttl)
	if err != nil {
		return nil, fmt.Errorf("presign %s: %w", l.OutputKey, err)
	}
	l.OutputPutUrl = u
	return l, nil
}

// segmentOf finds a render's place among the segments its job's concat
// joins (the concat's renders, in order); -1, 0 when it has none.
func segmentOf(st *fsm.State, j *fsm.Job, taskID string) (index, count int32) {
	index = -1
	for i := len(j.TaskIDs) - 1; i >= 0; i-- {
		c := st.Tasks[j.TaskIDs[i]]
		if c == nil || c.Type != montagev1.TaskType_TASK_TYPE_CONCAT {
			continue
		}
		for _, d := range c.DependsOn {
			if dt := st.Tasks[d]; dt != nil && dt.Type == montagev1.TaskType_TASK_TYPE_RENDER {
				if d == taskID {
					index = count
				}
				count++
			}
		}
		break
	}
	if index < 0 {
		return -1, 0
	}
	return index, count
}

// concatInputsObject moves a concat's list of inputs out of the lease into
// an object the agent reads: a six-hour montage in short chunks has
// thousands of presigned URLs, which do not belong in one RPC message.
func (s *Server) concatInputsObject(l *montagev1.Lease, token uint64) error {
	b, err := proto.Marshal(l.Concat)
	if err != nil {
		return fmt.Errorf("concat inputs: %w", err)
	}
	key := blob.ConcatInputsKey(l.GetJobId(), token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.store.Put(ctx, key, b); err != nil {
		return err
	}
	u, err := s.store.PresignGet(key, urlTTL(0))
	if err != nil {
		return fmt.Errorf("presign %s: %w", key, err)
	}
	sum := sha256.Sum256(b)
	l.Concat = nil
	l.ConcatInputsUrl, l.ConcatInputsSize, l.ConcatInputsSha256 = u, int64(len(b)), hex.EncodeToString(sum[:])
	return nil
}

// Heartbeat renews the agent's leases and lists those it must drop.
func (s *Server) Heartbeat(_ context.Context, req *connect.Request[montagev1.HeartbeatRequest]) (*connect.Response[montagev1.HeartbeatResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	if err := checkStatus(m.GetStatus()); err != nil {
		return nil, err
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	s.lead.Seen(m.GetAgentId())
	s.statuses.set(m.GetAgentId(), m.GetStatus())
	out := &montagev1.HeartbeatResponse{TtlSeconds: s.cfg.LeaseTTL.Seconds()}
	now := s.clock.Now()
	listed := map[string]bool{}
	for _, p := range m.GetLeases() {
		listed[p.GetTaskId()] = true
		_, err := s.checkFence(p.GetTaskId(), m.GetAgentId(), p.GetToken())
		if err != nil {
			out.RevokedTaskIds = append(out.RevokedTaskIds, p.GetTaskId())
			continue
		}
		// The replicated state is the authority on whether a lease lives;
		// the table only times it. A leader elected a moment ago may not
		// have rebuilt its table yet: adopt the lease rather than revoke it.
		if !s.leases.Renew(p.GetTaskId(), m.GetAgentId(), p.GetToken(), p.GetProgress(), now) {
			s.leases.Track(p.GetTaskId(), m.GetAgentId(), p.GetToken(), now)
			s.leases.Renew(p.GetTaskId(), m.GetAgentId(), p.GetToken(), p.GetProgress(), now)
		}
	}
	// A lease the agent does not list, granted long enough ago that its
	// grant cannot still be on its way (half a lease lifetime: agents
	// heartbeat at least every third), is one the agent does not have:
	// requeue it now without using an attempt, before it would expire as if
	// the agent had died on it.
	for _, e := range s.leases.Holding(m.GetAgentId()) {
		if !listed[e.TaskID] && now.Sub(e.Since) > s.cfg.LeaseTTL/2 {
			if _, err := s.checkFence(e.TaskID, m.GetAgentId(), e.Token); err == nil {
				s.log.Info("lease not held by its agent; requeued", "task", e.TaskID, "agent", m.GetAgentId(), "token", e.Token)
				s.handBack(e.TaskID, m.GetAgentId(), e.Token, "the agent did not hold this lease (its grant was lost)")
			}
		}
	}
	return connect.NewResponse(out), nil
}

// CompleteTask verifies the uploaded object and commits the result under the
// lease token; a report from a superseded lease is refused.
func (s *Server) CompleteTask(ctx context.Context, req *connect.Request[montagev1.CompleteTaskRequest]) (*connect.Response[montagev1.CompleteTaskResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	r := m.GetResult()
	if r.GetReuseCache() {
		return s.reuseCache(m)
	}
	if r == nil || r.GetKey() == "" {
		return nil, invalid("result.key", "is required")
	}
	if len(r.GetSha256()) != 64 {
		return nil, invalid("result.sha256", "must be 64 hex digits")
	}
	if r.GetSize() <= 0 {
		return nil, invalid("result.size", "must be positive")
	}
	if d := r.GetDurationSeconds(); math.IsNaN(d) || math.IsInf(d, 0) || d < 0 || d > 24*3600 {
		return nil, invalid("result.duration_seconds", "must be a number of seconds between 0 and 86400, got %v", d)
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	// Fence before touching storage, and only accept the key of this attempt.
	want, ferr := s.checkFence(m.GetTaskId(), m.GetAgentId(), m.GetToken())
	facts := s.taskFacts(m.GetTaskId())
	if ferr != nil {
		s.ended(facts, "rejected", 0, "")
		return nil, ferr
	}
	if r.GetKey() != want {
		return nil, invalid("result.key", "must be %q for this attempt, got %q", want, r.GetKey())
	}
	// Parts uploaded with checksums name the object's composite checksum;
	// the agent may have completed the upload itself (StartUpload's
	// complete_url), or leaves it to this call (upload_id).
	parts := make([]blob.Part, len(r.GetParts()))
	var partSums []string
	for i, p := range r.GetParts() {
		parts[i] = blob.Part{Number: int(p.GetNumber()), ETag: p.GetEtag(), SHA256: strings.ToLower(p.GetSha256())}
		if parts[i].SHA256 != "" && blob.B64(parts[i].SHA256) == "" {
			return nil, invalid(fmt.Sprintf("result.parts[%d].sha256", i), "must be 64 hex digits")
		}
		partSums = append(partSums, parts[i].SHA256)
	}
	if slices.Contains(partSums, "") {
		partSums = nil // uploaded without checksums
	}
	if id := r.GetUploadId(); id != "" {
		if err := s.store.CompleteMultipart(ctx, r.GetKey(), id, parts); err != nil {
			// A bad part list cannot be fixed by retrying it; the upload is
			// aborted and the agent fails the attempt.
			_ = s.store.AbortMultipart(ctx, r.GetKey(), id)
			s.ended(facts, "corrupt", 0, "")
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("result.parts: %w", err))
		}
	}
	// Each object is proven from the store's metadata where it can be;
	// otherwise a small one is read back now and a large one later.
	deferred := false
	verify := func(key string, c blob.Claim) error {
		err := s.checkObject(ctx, key, c)
		switch {
		case errors.Is(err, errReadBackLater):
			deferred = true
			return nil
		case err == nil:
			return nil
		}
		s.ended(facts, "corrupt", 0, "")
		if errors.Is(err, blob.ErrMismatch) || errors.Is(err, blob.ErrMissing) {
			return connect.NewError(connect.CodeFailedPrecondition, err)
		}
		return connect.NewError(connect.CodeUnavailable, err)
	}
	if err := verify(r.GetKey(), blob.Claim{Size: r.GetSize(), SHA256: strings.ToLower(r.GetSha256()), Parts: partSums}); err != nil {
		return nil, err
	}
	res := fsm.Result{Key: r.GetKey(), Size: r.GetSize(), SHA256: strings.ToLower(r.GetSha256()), Duration: r.GetDurationSeconds(),
		Warning: agentNote(r.GetWarning())}
	if len(r.GetExtraOutputs()) > 0 {
		jobID, taskID, grant, _ := blob.AttemptOf(want)
		res.Outputs = map[string]string{}
		res.OutputSums = map[string]fsm.Checksum{}
		for i, x := range r.GetExtraOutputs() {
			// Only the keys this attempt's lease presigned are accepted.
			if taskID != jobID+"-concat" || !slices.Contains(concatExtras, x.GetName()) && !slices.Contains(subtitleExtras, x.GetName()) ||
				x.GetKey() != blob.OutputAttemptKey(jobID, x.GetName(), grant) {
				return nil, invalid(fmt.Sprintf("result.extra_outputs[%d]", i), "%q at %q is not an output of this attempt", x.GetName(), x.GetKey())
			}
			if err := verify(x.GetKey(), blob.Claim{Size: x.GetSize(), SHA256: strings.ToLower(x.GetSha256())}); err != nil {
				return nil, err
			}
			res.Outputs[x.GetName()] = x.GetKey()
			res.OutputSums[x.GetName()] = fsm.Checksum{Size: x.GetSize(), SHA256: strings.ToLower(x.GetSha256())}
		}
	}
	if src := r.GetSource(); src != nil {
		res.Source, _ = proto.MarshalOptions{Deterministic: true}.Marshal(src)
	}
	_, err := s.apply(&fsm.Command{Complete: &fsm.CompleteCmd{
		TaskID: m.GetTaskId(), AgentID: m.GetAgentId(), Token: m.GetToken(), Result: res, Verify: deferred,
	}})
	if err != nil {
		s.ended(facts, "rejected", 0, "")
		return nil, err
	}
	s.leases.Drop(m.GetTaskId())
	if deferred {
		s.keptBy(m)
		s.ended(facts, "verifying", r.GetDurationSeconds(), "")
		s.log.Info("task result kept for a read-back: the store does not check checksums", "task", m.GetTaskId(), "agent", m.GetAgentId(), "size", r.GetSize())
		s.lead.VerifySoon()
		return connect.NewResponse(&montagev1.CompleteTaskResponse{}), nil
	}
	s.lead.KeepSegment(m.GetTaskId(), res)
	s.keptBy(m)
	s.ended(facts, "succeeded", r.GetDurationSeconds(), "")
	s.log.Info("task completed", "task", m.GetTaskId(), "agent", m.GetAgentId(), "token", m.GetToken(), "key", r.GetKey())
	return connect.NewResponse(&montagev1.CompleteTaskResponse{}), nil
}

// keptBy records that the agent keeps the render it just completed for its
// montage's concat.
func (s *Server) keptBy(m *montagev1.CompleteTaskRequest) {
	if !m.GetKept() {
		return
	}
	var job string
	s.node.View(func(st *fsm.State) {
		if t := st.Tasks[m.GetTaskId()]; t != nil && t.Type == montagev1.TaskType_TASK_TYPE_RENDER {
			job = t.JobID
		}
	})
	if job != "" {
		s.kept.add(m.GetAgentId(), job)
	}
}

// errReadBackLater: the store cannot prove an object from its metadata and
// it is too large to read back inside the agent's call.
var errReadBackLater = errors.New("object is verified by a read-back after the report")

// checkObject proves key is what c claims: from the store's metadata
// (checksums it computed as the bytes arrived, so the time does not grow
// with the size), else by reading it back when it is small.
func (s *Server) checkObject(ctx context.Context, key string, c blob.Claim) error {
	start := time.Now()
	proven, err := s.store.Check(ctx, key, c)
	if err != nil || proven {
		if proven {
			s.m.verify.WithLabelValues("checksum").Observe(time.Since(start).Seconds())
		}
		return err
	}
	if c.Size > s.cfg.SyncVerifyBytes {
		return errReadBackLater
	}
	start = time.Now()
	err = s.store.Verify(ctx, key, c.Size, c.SHA256)
	s.m.verify.WithLabelValues("read_back").Observe(time.Since(start).Seconds())
	return err
}

// reuseCache commits a render's cache entry as its result: its agent found
// the source unchanged since the entry was made.
func (s *Server) reuseCache(m *montagev1.CompleteTaskRequest) (*connect.Response[montagev1.CompleteTaskResponse], error) {
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	facts := s.taskFacts(m.GetTaskId())
	if _, err := s.checkFence(m.GetTaskId(), m.GetAgentId(), m.GetToken()); err != nil {
		s.ended(facts, "rejected", 0, "")
		return nil, err
	}
	if _, err := s.apply(&fsm.Command{Complete: &fsm.CompleteCmd{
		TaskID: m.GetTaskId(), AgentID: m.GetAgentId(), Token: m.GetToken(), ReuseCache: true,
	}}); err != nil {
		return nil, err
	}
	s.leases.Drop(m.GetTaskId())
	s.ended(facts, "cached", 0, "")
	s.log.Info("task completed from the cache: source unchanged", "task", m.GetTaskId(), "agent", m.GetAgentId())
	return connect.NewResponse(&montagev1.CompleteTaskResponse{}), nil
}

// concatExtras are the outputs a concat writes besides the montage, and
// subtitleExtras those it adds when the job transcribes.
var (
	concatExtras   = []string{"chapters", "thumbnail", "manifest"}
	subtitleExtras = []string{"srt", "vtt"}
)

// presignSource signs a GET of a job's s3://bucket/key source.
func (s *Server) presignSource(raw string, ttl time.Duration) (string, error) {
	sp, ok := s.store.(blob.SourcePresigner)
	if !ok {
		return "", fmt.Errorf("source %s: this coordinator has no S3 store", raw)
	}
	bucket, key, err := spec.ParseS3URL(raw)
	if err != nil {
		return "", err
	}
	return sp.PresignSource(bucket, key, ttl)
}

// StartUpload opens a multipart upload for the caller's current lease and
// presigns every part. An upload its lease outlives is aborted by the
// janitor, so a dead agent leaves no parts behind.
func (s *Server) StartUpload(ctx context.Context, req *connect.Request[montagev1.StartUploadRequest]) (*connect.Response[montagev1.StartUploadResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	if m.GetSize() <= 0 {
		return nil, invalid("size", "must be positive")
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	key, err := s.checkFence(m.GetTaskId(), m.GetAgentId(), m.GetToken())
	if err != nil {
		return nil, err
	}
	sum := strings.ToLower(m.GetSha256())
	if sum != "" && blob.B64(sum) == "" {
		return nil, invalid("sha256", "must be 64 hex digits")
	}
	part := multipart.PartSize(m.GetSize(), s.cfg.PartSize)
	n := multipart.Count(m.GetSize(), part)
	ttl := urlTTL(float64(m.GetSize()) / 1e6) // a second per MB of margin on top
	if sum != "" && len(m.GetPartSha256()) == 0 {
		// One PUT, signed with its checksum: the store refuses other bytes.
		u, err := s.store.PresignPutSum(key, ttl, sum)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		return connect.NewResponse(&montagev1.StartUploadResponse{PutUrl: u}), nil
	}
	sums := m.GetPartSha256()
	if len(sums) > 0 && len(sums) != n {
		return nil, invalid("part_sha256", "has %d sums; %d bytes make %d parts of %d", len(sums), m.GetSize(), n, part)
	}
	for i, ps := range sums {
		if blob.B64(ps) == "" {
			return nil, invalid(fmt.Sprintf("part_sha256[%d]", i), "must be 64 hex digits")
		}
	}
	id, err := s.store.StartMultipart(ctx, key, len(sums) > 0)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	out := &montagev1.StartUploadResponse{UploadId: id, PartSize: part}
	for i := 1; i <= n; i++ {
		var u string
		if len(sums) > 0 {
			u, err = s.store.PresignPartSum(key, id, i, ttl, strings.ToLower(sums[i-1]))
		} else {
			u, err = s.store.PresignPart(key, id, i, ttl)
		}
		if err != nil {
			_ = s.store.AbortMultipart(ctx, key, id)
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		out.PartUrls = append(out.PartUrls, u)
	}
	if len(sums) > 0 {
		if out.CompleteUrl, err = s.store.PresignComplete(key, id, ttl); err != nil {
			_ = s.store.AbortMultipart(ctx, key, id)
			return nil, connect.NewError(connect.CodeInternal, err)
		}
	}
	s.log.Info("multipart upload started", "task", m.GetTaskId(), "key", key, "parts", n, "part_size", part)
	return connect.NewResponse(out), nil
}

// FailTask ends an attempt; the task is retried until its attempt limit.
func (s *Server) FailTask(_ context.Context, req *connect.Request[montagev1.FailTaskRequest]) (*connect.Response[montagev1.FailTaskResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	msg := m.GetError()
	if len(msg) > 4096 {
		msg = msg[len(msg)-4096:] // the end of ffmpeg's stderr says what went wrong
	}
	if msg == "" {
		msg = "agent reported failure without a message"
	}
	facts := s.taskFacts(m.GetTaskId())
	_, err := s.apply(&fsm.Command{Fail: &fsm.FailCmd{TaskID: m.GetTaskId(), AgentID: m.GetAgentId(), Token: m.GetToken(), Error: msg, Handback: m.GetHandback(), Final: m.GetFinal(),
		BlockAfter: s.cfg.BlockAfter, QuarantineAfter: s.cfg.QuarantineAfter}})
	if err != nil {
		s.ended(facts, "rejected", 0, "")
		return nil, err
	}
	s.leases.Drop(m.GetTaskId())
	outcome := "failed"
	if m.GetHandback() {
		outcome = "handed_back"
	}
	s.ended(facts, outcome, 0, msg)
	s.log.Info("task attempt ended", "task", m.GetTaskId(), "agent", m.GetAgentId(), "outcome", outcome, "error", msg)
	return connect.NewResponse(&montagev1.FailTaskResponse{}), nil
}

// resultKey is where the current grant of t uploads its result: named by
// its lease token, so every grant has keys of its own.
func resultKey(t *fsm.Task) string {
	if t.Type == montagev1.TaskType_TASK_TYPE_CONCAT {
		return blob.MontageAttemptKey(t.JobID, t.LeaseToken)
	}
	return blob.SegmentKey(t.JobID, t.ID, t.LeaseToken)
}

// checkFence answers whether agentID holds taskID's lease under token (the
// state machine's one fence check) and where that grant uploads its result.
func (s *Server) checkFence(taskID, agentID string, token uint64) (want string, err error) {
	s.node.View(func(st *fsm.State) {
		t, ferr := st.Fence(taskID, agentID, token)
		if ferr != nil {
			err = toConnect(ferr)
			return
		}
		want = resultKey(t)
	})
	return want, err
}

// agentNote bounds what an agent says of its result: one line of valid
// UTF-8, at most 300 bytes, before it goes into the log and the job.
func agentNote(s string) string {
	s, _, _ = strings.Cut(strings.ToValidUTF8(s, "?"), "\n")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
