// Package sched is the scheduling policy: which runnable tasks an asking agent
// gets. It reads state and decides; the caller commits grants through raft.
package sched

import (
	"slices"
	"time"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Ask is an agent's request for work.
type Ask struct {
	Agent string
	// Slots is how many tasks it can take; GPU how many of them may use a
	// hardware encoder (its free encoder sessions).
	Slots, GPU int
	// FreeDisk, when positive, is how many bytes the agent can still
	// write: a task expected to need more waits for another agent.
	FreeDisk int64
	// Online reports which agents are in contact now (nil: all).
	Online func(agentID string) bool
	// Skip names tasks not to pick: grants of them are being proposed for
	// other agents right now.
	Skip func(taskID string) bool
	// Keepers lists the agents that keep a job's committed segments (they
	// rendered them and hold them for the concat, whose audio they encode
	// ahead). A concat runnable for less than Affinity waits for such an
	// agent when one is ready, online and able to take it: that agent
	// joins files it has instead of downloading them. Now is the caller's
	// clock; Waits, when set, hears of each concat left waiting and until
	// when it waits.
	Keepers  func(jobID string) []string
	Affinity time.Duration
	Now      time.Time
	Waits    func(taskID string, until time.Time)
}

// Pick returns up to a.Slots task ids for the asking agent, best first:
// jobs by priority (high first) then age (old first); within a job the
// longest expected work first, so that the last task to finish is a short
// one. A task goes only to an agent that provides all it requires, and at
// most a.GPU of the picks use a hardware encoder. A draining, quarantined
// or unknown agent gets nothing, and nothing of a job that blocked it. A
// task this agent failed waits for another agent that is online and could
// take it, and a fresh concat for an agent keeping its segments (Keepers).
// Only runnable tasks are read, never all jobs or tasks.
func Pick(s *fsm.State, ask Ask) []string {
	agentID, n, gpu, freeDisk, online := ask.Agent, ask.Slots, ask.GPU, ask.FreeDisk, ask.Online
	if n <= 0 {
		return nil
	}
	a := s.Agents[agentID]
	if a == nil || a.State != montagev1.AgentState_AGENT_STATE_READY {
		return nil
	}
	var out []string
	// Runnable is in scheduling order already: jobs by priority then age,
	// and within a job the longest expected work first.
	for t := range s.Runnable() {
		if ask.Skip != nil && ask.Skip(t.ID) {
			continue
		}
		j := s.Jobs[t.JobID]
		if j.BlocksAgent(agentID) || !Provides(a, t.Requires) || t.FailCounts[agentID] > 0 && otherTaker(s, j, t, agentID, online) {
			continue
		}
		if freeDisk > 0 && t.ExpectedBytes > freeDisk {
			continue
		}
		if until, ok := waitsForKeeper(s, j, t, ask); ok {
			if ask.Waits != nil {
				ask.Waits(t.ID, until)
			}
			continue
		}
		if NeedsGPU(t) {
			if gpu <= 0 {
				continue
			}
			gpu--
		}
		freeDisk -= t.ExpectedBytes
		out = append(out, t.ID)
		if len(out) == n {
			return out
		}
	}
	return out
}

// otherTaker reports whether an online agent other than agentID, which has
// not failed t and is not blocked from j, could take it.
func otherTaker(s *fsm.State, j *fsm.Job, t *fsm.Task, agentID string, online func(string) bool) bool {
	if online == nil {
		return false
	}
	for id, b := range s.Agents {
		if id != agentID && b.State == montagev1.AgentState_AGENT_STATE_READY && online(id) &&
			t.FailCounts[id] == 0 && !j.BlocksAgent(id) && Provides(b, t.Requires) {
			return true
		}
	}
	return false
}

// waitsForKeeper reports whether concat t is left for another agent that
// keeps its job's segments, and until when it waits for one. The agent
// that keeps the montage's first segment is preferred to other keepers:
// it has the audio encoded ahead from there.
func waitsForKeeper(s *fsm.State, j *fsm.Job, t *fsm.Task, ask Ask) (time.Time, bool) {
	if t.Type != montagev1.TaskType_TASK_TYPE_CONCAT || ask.Keepers == nil || ask.Affinity <= 0 {
		return time.Time{}, false
	}
	keepers := ask.Keepers(t.JobID)
	if len(keepers) == 0 {
		return time.Time{}, false
	}
	able := func(id string) bool {
		b := s.Agents[id]
		return b != nil && b.State == montagev1.AgentState_AGENT_STATE_READY && (ask.Online == nil || ask.Online(id)) &&
			t.FailCounts[id] == 0 && !j.BlocksAgent(id) && Provides(b, t.Requires)
	}
	if first := firstSegment(s, t); first != nil && slices.Contains(keepers, first.AgentID) && able(first.AgentID) {
		keepers = []string{first.AgentID}
	}
	if slices.Contains(keepers, ask.Agent) {
		return time.Time{}, false
	}
	until := ReadySince(s, t).Add(ask.Affinity)
	if !ask.Now.Before(until) {
		return time.Time{}, false
	}
	if slices.ContainsFunc(keepers, able) {
		return until, true
	}
	return time.Time{}, false
}

// firstSegment is the render a concat joins first (its dependencies are in
// the montage's order), or nil.
func firstSegment(s *fsm.State, concat *fsm.Task) *fsm.Task {
	for _, d := range concat.DependsOn {
		if dt := s.Tasks[d]; dt != nil && dt.Type == montagev1.TaskType_TASK_TYPE_RENDER {
			return dt
		}
	}
	return nil
}

// ReadySince is when t became runnable as far as the state tells: the
// latest change to it or to a task it waits for.
func ReadySince(s *fsm.State, t *fsm.Task) time.Time {
	since := t.UpdatedAt
	for _, d := range t.DependsOn {
		if dt := s.Tasks[d]; dt != nil && dt.UpdatedAt.After(since) {
			since = dt.UpdatedAt
		}
	}
	return since
}

// Provides reports whether an agent offers everything in requires.
func Provides(a *fsm.Agent, requires []string) bool {
	for _, r := range requires {
		if !slices.Contains(a.Provides, r) {
			return false
		}
	}
	return true
}

// NeedsGPU reports whether a task encodes with a hardware encoder.
func NeedsGPU(t *fsm.Task) bool {
	for _, r := range t.Requires {
		if spec.EncoderFamily(r) != "" {
			return true
		}
	}
	return false
}

// Unmet names the first requirement of a queued, runnable task of job that
// no ready agent provides, or "" when every such task has an agent.
func Unmet(s *fsm.State, j *fsm.Job) string {
	var ready []*fsm.Agent
	for _, a := range s.Agents {
		if a.State == montagev1.AgentState_AGENT_STATE_READY {
			ready = append(ready, a)
		}
	}
	for _, t := range s.TasksOf(j) {
		if t.State != montagev1.TaskState_TASK_STATE_QUEUED || !s.DepsDone(t) {
			continue
		}
		for _, r := range t.Requires {
			ok := false
			for _, a := range ready {
				if slices.Contains(a.Provides, r) {
					ok = true
					break
				}
			}
			if !ok {
				return r
			}
		}
	}
	return ""
}

// ChooseEncoder picks a job's one encoder. "none" is the codec's software
// encoder and a named family is that family's encoder (the job then waits
// for such an agent). "auto" takes the hardware family offering the most
// encoder sessions among the online agents, and software when none has one:
// a CPU-only farm encodes with libx264. online holds the ready agents that
// are in contact now; the choice is made once, at submit, and travels in the
// job's profile so every segment uses it.
func ChooseEncoder(online []*fsm.Agent, codec, hwaccel string) string {
	switch hwaccel {
	case spec.HWNone:
		return spec.SoftwareEncoder(codec)
	case spec.HWAuto, "":
	default:
		return spec.EncoderFor(hwaccel, codec)
	}
	sessions := map[string]int{}
	for _, a := range online {
		if a.State != montagev1.AgentState_AGENT_STATE_READY {
			continue
		}
		for _, fam := range spec.HWFamilies {
			if slices.Contains(a.Provides, spec.EncoderFor(fam, codec)) {
				sessions[fam] += max(1, a.GPUSessions)
			}
		}
	}
	best, most := "", 0
	for _, fam := range spec.HWFamilies { // fixed order: ties go the same way everywhere
		if sessions[fam] > most {
			best, most = fam, sessions[fam]
		}
	}
	if best == "" {
		return spec.SoftwareEncoder(codec)
	}
	return spec.EncoderFor(best, codec)
}
