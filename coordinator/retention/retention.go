// Package retention decides what storage housekeeping finished jobs need:
// moving outputs to their stable keys, deleting intermediate segments, and
// deleting whole jobs after the retention period. It only decides; the
// coordinator's janitor does the storage work and records each step in raft.
package retention

import (
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Policy is the operator's choice.
type Policy struct {
	// Retention is how long finished jobs and their outputs are kept; 0 keeps
	// them forever.
	Retention time.Duration
	// PurgeDelay is how long intermediate objects outlive finalization:
	// download links handed out just before it still point at the attempt
	// object, so it stays a while (as long as such a link lives by default).
	PurgeDelay time.Duration
}

// Kind of housekeeping step.
type Kind int

const (
	// Finalize copies a succeeded job's outputs to their stable keys.
	Finalize Kind = iota + 1
	// PurgeSegments deletes a succeeded job's segments and attempt objects.
	PurgeSegments
	// Delete removes a finished job's objects and then the job itself.
	Delete
)

func (k Kind) String() string {
	switch k {
	case Finalize:
		return "finalize"
	case PurgeSegments:
		return "purge-segments"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Action is one step for one job.
type Action struct {
	Kind  Kind
	JobID string
}

// Plan lists the steps due at now, oldest jobs first. Each step is safe to
// repeat, so a crash between the storage work and its raft record only means
// the step runs again.
func Plan(s *fsm.State, now time.Time, p Policy) []Action {
	var out []Action
	planned := map[string]bool{}
	del := func(j *fsm.Job) {
		if !planned[j.ID] {
			planned[j.ID] = true
			out = append(out, Action{Kind: Delete, JobID: j.ID})
		}
	}
	// Only the jobs with housekeeping left and those past retention are
	// read: a week of finished jobs is not scanned on every round.
	for _, j := range s.Untidy() {
		if j.Deleting || (p.Retention > 0 && now.Sub(j.FinishedAt) >= p.Retention) {
			del(j)
			continue
		}
		switch {
		case j.State != montagev1.JobState_JOB_STATE_SUCCEEDED:
			// Failed and canceled jobs have no outputs to keep; their
			// segments go after the same delay, and the job is compacted.
			if now.Sub(j.FinishedAt) >= p.PurgeDelay {
				out = append(out, Action{Kind: PurgeSegments, JobID: j.ID})
			}
		case !j.Finalized:
			out = append(out, Action{Kind: Finalize, JobID: j.ID})
		case !j.SegmentsPurged && now.Sub(j.FinalizedAt) >= p.PurgeDelay:
			out = append(out, Action{Kind: PurgeSegments, JobID: j.ID})
		}
	}
	if p.Retention > 0 {
		for j := range s.FinishedBefore(now.Add(-p.Retention).Add(1)) {
			del(j)
		}
	}
	return out
}

// Orphaned returns the unfinished multipart uploads that no live lease owns:
// an upload is kept only while the task attempt named by its key still holds
// its lease. Everything else (expired, failed or finished attempts, deleted
// jobs, keys we never make) is to be aborted.
func Orphaned(s *fsm.State, uploads []blob.Upload) []blob.Upload {
	var out []blob.Upload
	for _, u := range uploads {
		_, taskID, grant, ok := blob.AttemptOf(u.Key)
		if ok {
			if t := s.Tasks[taskID]; t != nil && t.State == montagev1.TaskState_TASK_STATE_LEASED && t.LeaseToken == grant {
				continue
			}
		}
		out = append(out, u)
	}
	return out
}
