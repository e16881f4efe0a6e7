package api

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/lease"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/coordinator/sched"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// jobProto renders a job with its tasks, adding the in-memory progress of
// leased tasks. Call it inside View.
func jobProto(st *fsm.State, j *fsm.Job, leases *lease.Table, withTasks bool) *montagev1.Job {
	spec := &montagev1.JobSpec{}
	_ = proto.Unmarshal(j.Spec, spec) // written by the planner from a valid message
	// Show the profile as resolved: defaults applied and the encoder chosen.
	prof := &montagev1.RenderProfile{}
	if proto.Unmarshal(j.Profile, prof) == nil && len(j.Profile) > 0 {
		spec.Profile = prof
	}
	out := &montagev1.Job{
		Id:        j.ID,
		Name:      j.Name,
		Spec:      spec,
		State:     j.State,
		CreatedAt: timestamppb.New(j.CreatedAt),
		UpdatedAt: timestamppb.New(j.UpdatedAt),
		Outputs:   map[string]string{},
		Warnings:  append([]string(nil), j.Warnings...),
		Error:     j.Error,
		// Blocked agents: the job is sorted; the proto gets a copy.
		BlockedAgents: append([]string(nil), j.Blocked...),
	}
	if j.Deleting {
		out.Warnings = append(out.Warnings, "retention is deleting this job and its outputs")
	} else {
		for k, v := range j.Outputs {
			out.Outputs[k] = v
		}
	}
	if w := j.Webhook; w != nil {
		out.Webhook = &montagev1.WebhookStatus{Url: w.URL, Attempts: int32(w.Attempts), Delivered: w.Delivered, DeliveredAt: tsOrNil(w.DeliveredAt),
			LastStatus: w.LastStatus, GaveUp: w.GaveUp, NextAttempt: tsOrNil(w.NextAttempt)}
	}
	if o := j.Origin; o != nil {
		out.Origin = &montagev1.JobOrigin{Schedule: o.Schedule, Slot: tsOrNil(o.Slot), Streamers: o.Streamers}
	}
	if !j.Terminal() {
		if need := sched.Unmet(st, j); need != "" {
			out.WaitingFor = waitingFor(need)
		}
	}
	var done, total float64
	for _, t := range st.TasksOf(j) {
		tp := taskProto(t, leases)
		w := t.ExpectedSeconds
		if w <= 0 {
			w = 1
		}
		total += w
		done += w * tp.Progress
		out.TranscriptAudioSeconds += t.TranscriptAudio()
		if withTasks {
			out.Tasks = append(out.Tasks, tp)
		}
	}
	if total > 0 {
		out.Progress = done / total
	}
	if sm := j.Summary; sm != nil {
		out.TaskSummary = &montagev1.TaskSummary{Tasks: int32(sm.Tasks), Cached: int32(sm.Cached), Attempts: int32(sm.Attempts),
			TranscriptAudioSeconds: sm.TranscriptAudio}
		out.TranscriptAudioSeconds = sm.TranscriptAudio
		if j.State == montagev1.JobState_JOB_STATE_SUCCEEDED {
			out.Progress = 1
		}
	}
	return out
}

func waitingFor(need string) string {
	switch {
	case spec.EncoderFamily(need) != "":
		return fmt.Sprintf("waiting for an agent whose %s encoder works (none is ready; agents prove hardware encoders with a test encode at start)", need)
	case need == planner.NeedsYTDLP:
		return "waiting for an agent with yt-dlp to resolve a page URL (install yt-dlp on an agent and restart it)"
	case need == planner.NeedsDrawtext:
		return "waiting for an agent with a font for titles (install fonts-dejavu-core or pass -font)"
	case need == planner.NeedsSubtitles:
		return "waiting for an agent that can burn subtitles (an ffmpeg with libass, and a font: install fonts-dejavu-core or pass -font)"
	case need == planner.NeedsTranscribe:
		return "waiting for an agent that transcribes (start one with OPENAI_API_KEY or -openai-key-file, and -openai-base-url for a local server)"
	}
	return fmt.Sprintf("waiting for an agent that provides %s", need)
}

func taskProto(t *fsm.Task, leases *lease.Table) *montagev1.Task {
	tp := &montagev1.Task{
		Id:              t.ID,
		JobId:           t.JobID,
		Type:            t.Type,
		HighlightIndex:  int32(t.HighlightIndex),
		State:           t.State,
		DependsOn:       append([]string(nil), t.DependsOn...),
		Attempts:        int32(t.Attempts),
		MaxAttempts:     int32(t.MaxAttempts),
		LeaseToken:      t.LeaseToken,
		AgentId:         t.AgentID,
		Error:           t.Error,
		Commits:         int32(t.Commits),
		ExpectedSeconds: t.ExpectedSeconds,
		Chunk:           int32(t.Chunk),
		Chunks:          int32(max(1, t.Chunks)),
		Cached:          t.Cached,
		Requires:        append([]string(nil), t.Requires...),
		Role:            t.Role,
	}
	if t.Result != nil {
		tp.ResultKey = t.Result.Key
	}
	switch t.State {
	case montagev1.TaskState_TASK_STATE_SUCCEEDED:
		tp.Progress = 1
	case montagev1.TaskState_TASK_STATE_LEASED:
		if e, ok := leases.Get(t.ID); ok && e.Token == t.LeaseToken {
			tp.Progress = e.Progress
		}
	}
	return tp
}

// capsOf decodes what an agent proved at start (empty when unreadable).
func capsOf(a *fsm.Agent) *montagev1.AgentCapabilities {
	caps := &montagev1.AgentCapabilities{}
	_ = proto.Unmarshal(a.Capabilities, caps)
	return caps
}

func agentProto(a *fsm.Agent) *montagev1.Agent {
	caps := capsOf(a)
	return &montagev1.Agent{
		MetricsAddr:          a.MetricsAddr,
		Version:              a.Version,
		Protocol:             int32(a.Protocol),
		Schedule:             a.Schedule,
		TimeZone:             a.TimeZone,
		ScheduleGraceSeconds: a.ScheduleGrace.Seconds(),
		Id:                   a.ID,
		Name:                 a.Name,
		Capabilities:         caps,
		Slots:                int32(a.Slots),
		Labels:               a.Labels,
		State:                a.State,
		StateReason:          a.StateReason,
		FailStreak:           int32(a.FailStreak),
	}
}
