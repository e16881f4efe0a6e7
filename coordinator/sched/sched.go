// Package sched is the scheduling policy: which runnable tasks an asking agent
// gets. It reads state and decides; the caller commits grants through raft.
package sched

import (
	"sort"

	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Pick returns up to n task ids for agentID, best first: jobs by priority
// (high first) then age (old first); within a job the longest expected work
// first, so that the last task to finish is a short one. A draining,
// quarantined or unknown agent gets nothing.
func Pick(s *fsm.State, agentID string, n int) []string {
	if n <= 0 {
		return nil
	}
	a := s.Agents[agentID]
	if a == nil || a.State != montagev1.AgentState_AGENT_STATE_READY {
		return nil
	}
	jobs := s.JobsByAge()
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].Priority > jobs[j].Priority })
	var out []string
	for _, j := range jobs {
		if j.Terminal() {
			continue
		}
		var runnable []*fsm.Task
		for _, t := range s.TasksOf(j) {
			if t.State == montagev1.TaskState_TASK_STATE_QUEUED && s.DepsDone(t) {
				runnable = append(runnable, t)
			}
		}
		sort.SliceStable(runnable, func(x, y int) bool {
			return runnable[x].ExpectedSeconds > runnable[y].ExpectedSeconds
		})
		for _, t := range runnable {
			out = append(out, t.ID)
			if len(out) == n {
				return out
			}
		}
	}
	return out
}
