package fsm

import (
	"encoding/json"
	"time"

	statev1 "github.com/stream-montages/montage/proto/montage/state/v1"
)

// Conversions between the records and their snapshot messages. A field
// added to a record must be added here and to state.proto; the round-trip
// test fills every field and fails on one that is lost.

func sumsOut(m map[string]Checksum) map[string]*statev1.Checksum {
	if m == nil {
		return nil
	}
	out := make(map[string]*statev1.Checksum, len(m))
	for k, c := range m {
		out[k] = &statev1.Checksum{Size: c.Size, Sha256: c.SHA256}
	}
	return out
}

func sumsIn(m map[string]*statev1.Checksum) map[string]Checksum {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]Checksum, len(m))
	for k, c := range m {
		out[k] = Checksum{Size: c.GetSize(), SHA256: c.GetSha256()}
	}
	return out
}

func countsOut(m map[string]int) map[string]int64 {
	if m == nil {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, n := range m {
		out[k] = int64(n)
	}
	return out
}

func countsIn(m map[string]int64) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, n := range m {
		out[k] = int(n)
	}
	return out
}

func strs(xs []string) []string {
	if len(xs) == 0 {
		return nil
	}
	return xs
}

func strMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func byts(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func jobOut(j *Job) *statev1.Job {
	out := &statev1.Job{
		Id: j.ID, Name: j.Name, Spec: j.Spec, Profile: j.Profile, Priority: j.Priority, State: j.State,
		CreatedAt: unixNano(j.CreatedAt), UpdatedAt: unixNano(j.UpdatedAt), TaskIds: j.TaskIDs,
		Outputs: j.Outputs, OutputSums: sumsOut(j.OutputSums), Error: j.Error, Warnings: j.Warnings,
		Seq: j.Seq, FinishedAt: unixNano(j.FinishedAt), Finalized: j.Finalized, FinalizedAt: unixNano(j.FinalizedAt),
		SegmentsPurged: j.SegmentsPurged, Deleting: j.Deleting, Sources: j.Sources, IntroUrl: j.IntroURL,
		OutroUrl: j.OutroURL, Failures: countsOut(j.Failures), Blocked: j.Blocked, IdempotencyKey: j.IdempotencyKey,
	}
	if j.Summary != nil {
		out.Summary = &statev1.TaskSummary{Tasks: int32(j.Summary.Tasks), Cached: int32(j.Summary.Cached), Attempts: int32(j.Summary.Attempts),
			TranscriptAudioSeconds: j.Summary.TranscriptAudio}
	}
	if j.Origin != nil {
		out.OriginJson, _ = json.Marshal(j.Origin) // plain values: cannot fail
	}
	if j.Webhook != nil {
		out.WebhookJson, _ = json.Marshal(j.Webhook)
	}
	return out
}

func jobIn(p *statev1.Job) *Job {
	j := &Job{
		ID: p.GetId(), Name: p.GetName(), Spec: byts(p.GetSpec()), Profile: byts(p.GetProfile()), Priority: p.GetPriority(),
		State: p.GetState(), CreatedAt: fromUnixNano(p.GetCreatedAt()), UpdatedAt: fromUnixNano(p.GetUpdatedAt()),
		TaskIDs: strs(p.GetTaskIds()), Outputs: strMap(p.GetOutputs()), OutputSums: sumsIn(p.GetOutputSums()),
		Error: p.GetError(), Warnings: strs(p.GetWarnings()), Seq: p.GetSeq(), FinishedAt: fromUnixNano(p.GetFinishedAt()),
		Finalized: p.GetFinalized(), FinalizedAt: fromUnixNano(p.GetFinalizedAt()), SegmentsPurged: p.GetSegmentsPurged(),
		Deleting: p.GetDeleting(), Sources: strs(p.GetSources()), IntroURL: p.GetIntroUrl(), OutroURL: p.GetOutroUrl(),
		Failures: countsIn(p.GetFailures()), Blocked: strs(p.GetBlocked()), IdempotencyKey: p.GetIdempotencyKey(),
	}
	if sm := p.GetSummary(); sm != nil {
		j.Summary = &TaskSummary{Tasks: int(sm.GetTasks()), Cached: int(sm.GetCached()), Attempts: int(sm.GetAttempts()),
			TranscriptAudio: sm.GetTranscriptAudioSeconds()}
	}
	// Written by jobOut from plain values; a record that does not read back
	// loses only its origin or webhook, never the job.
	if b := p.GetOriginJson(); len(b) > 0 {
		o := &Origin{}
		if json.Unmarshal(b, o) == nil {
			j.Origin = o
		}
	}
	if b := p.GetWebhookJson(); len(b) > 0 {
		w := &Webhook{}
		if json.Unmarshal(b, w) == nil {
			j.Webhook = w
		}
	}
	return j
}

func taskOut(t *Task) *statev1.Task {
	out := &statev1.Task{
		Id: t.ID, JobId: t.JobID, Type: t.Type, HighlightIndex: int64(t.HighlightIndex), DependsOn: t.DependsOn,
		State: t.State, Attempts: int64(t.Attempts), MaxAttempts: int64(t.MaxAttempts), LeaseToken: t.LeaseToken,
		AgentId: t.AgentID, LeasedAt: unixNano(t.LeasedAt), Error: t.Error, Commits: int64(t.Commits),
		ExpectedSeconds: t.ExpectedSeconds, UpdatedAt: unixNano(t.UpdatedAt), Role: t.Role, Chunk: int64(t.Chunk),
		Chunks: int64(t.Chunks), CacheKey: t.CacheKey, CacheEntry: t.CacheEntry, Cached: t.Cached, Requires: t.Requires,
		ExpectedBytes: t.ExpectedBytes, FailCounts: countsOut(t.FailCounts), SourceSuspect: t.SourceSuspect, Optional: t.Optional,
	}
	if r := t.Result; r != nil {
		out.Result = &statev1.Result{Key: r.Key, Size: r.Size, Sha256: r.SHA256, Duration: r.Duration, Source: r.Source,
			Outputs: r.Outputs, OutputSums: sumsOut(r.OutputSums), Warning: r.Warning}
	}
	if r := t.Render; r != nil {
		out.Render = &statev1.RenderInput{Url: r.URL, SourceType: r.SourceType, Start: r.Start, Duration: r.Duration,
			Title: r.Title, FadeIn: r.FadeIn, FadeOut: r.FadeOut, OverlayTitle: r.OverlayTitle, TitleSeconds: r.TitleSeconds,
			SnapStart: r.SnapStart, SnapEnd: r.SnapEnd, HighlightStart: r.HighlightStart, Burn: r.Burn}
	}
	return out
}

func taskIn(p *statev1.Task) *Task {
	t := &Task{
		ID: p.GetId(), JobID: p.GetJobId(), Type: p.GetType(), HighlightIndex: int(p.GetHighlightIndex()),
		DependsOn: strs(p.GetDependsOn()), State: p.GetState(), Attempts: int(p.GetAttempts()),
		MaxAttempts: int(p.GetMaxAttempts()), LeaseToken: p.GetLeaseToken(), AgentID: p.GetAgentId(),
		LeasedAt: fromUnixNano(p.GetLeasedAt()), Error: p.GetError(), Commits: int(p.GetCommits()),
		ExpectedSeconds: p.GetExpectedSeconds(), UpdatedAt: fromUnixNano(p.GetUpdatedAt()), Role: p.GetRole(),
		Chunk: int(p.GetChunk()), Chunks: int(p.GetChunks()), CacheKey: p.GetCacheKey(), CacheEntry: p.GetCacheEntry(),
		Cached: p.GetCached(), Requires: strs(p.GetRequires()), ExpectedBytes: p.GetExpectedBytes(),
		FailCounts: countsIn(p.GetFailCounts()), Optional: p.GetOptional(), SourceSuspect: p.GetSourceSuspect(),
	}
	if r := p.GetResult(); r != nil {
		t.Result = &Result{Key: r.GetKey(), Size: r.GetSize(), SHA256: r.GetSha256(), Duration: r.GetDuration(),
			Source: byts(r.GetSource()), Outputs: strMap(r.GetOutputs()), OutputSums: sumsIn(r.GetOutputSums()), Warning: r.GetWarning()}
	}
	if r := p.GetRender(); r != nil {
		t.Render = &RenderInput{URL: r.GetUrl(), SourceType: r.GetSourceType(), Start: r.GetStart(), Duration: r.GetDuration(),
			Title: r.GetTitle(), FadeIn: r.GetFadeIn(), FadeOut: r.GetFadeOut(), OverlayTitle: r.GetOverlayTitle(),
			TitleSeconds: r.GetTitleSeconds(), SnapStart: r.GetSnapStart(), SnapEnd: r.GetSnapEnd(), HighlightStart: r.GetHighlightStart(), Burn: r.GetBurn()}
	}
	return t
}

func agentOut(a *Agent) *statev1.Agent {
	return &statev1.Agent{
		Id: a.ID, Name: a.Name, Capabilities: a.Capabilities, Slots: int64(a.Slots), Labels: a.Labels,
		Provides: a.Provides, GpuSessions: int64(a.GPUSessions), State: a.State, RegisteredAt: unixNano(a.RegisteredAt),
		CredentialHash: a.CredentialHash, FailStreak: int64(a.FailStreak), StateReason: a.StateReason, MetricsAddr: a.MetricsAddr, Version: a.Version, Protocol: int64(a.Protocol), EnrolledName: a.EnrolledName, Schedule: a.Schedule, TimeZone: a.TimeZone, ScheduleGrace: int64(a.ScheduleGrace),
	}
}

func agentIn(p *statev1.Agent) *Agent {
	return &Agent{
		ID: p.GetId(), Name: p.GetName(), Capabilities: byts(p.GetCapabilities()), Slots: int(p.GetSlots()),
		Labels: strMap(p.GetLabels()), Provides: strs(p.GetProvides()), GPUSessions: int(p.GetGpuSessions()),
		State: p.GetState(), RegisteredAt: fromUnixNano(p.GetRegisteredAt()), CredentialHash: p.GetCredentialHash(),
		FailStreak: int(p.GetFailStreak()), StateReason: p.GetStateReason(), MetricsAddr: p.GetMetricsAddr(), Version: p.GetVersion(), Protocol: int(p.GetProtocol()), EnrolledName: p.GetEnrolledName(), Schedule: p.GetSchedule(), TimeZone: p.GetTimeZone(), ScheduleGrace: time.Duration(p.GetScheduleGrace()),
	}
}

func cacheOut(e *CacheEntry) *statev1.CacheEntry {
	return &statev1.CacheEntry{
		Key: e.Key, Plan: e.Plan, Identity: e.Identity, Object: e.Object, Size: e.Size, Sha256: e.SHA256,
		Duration: e.Duration, Source: e.Source, AddedAt: unixNano(e.AddedAt), UsedAt: unixNano(e.UsedAt),
	}
}

func cacheIn(p *statev1.CacheEntry) *CacheEntry {
	return &CacheEntry{
		Key: p.GetKey(), Plan: p.GetPlan(), Identity: p.GetIdentity(), Object: p.GetObject(), Size: p.GetSize(),
		SHA256: p.GetSha256(), Duration: p.GetDuration(), Source: byts(p.GetSource()),
		AddedAt: fromUnixNano(p.GetAddedAt()), UsedAt: fromUnixNano(p.GetUsedAt()),
	}
}
