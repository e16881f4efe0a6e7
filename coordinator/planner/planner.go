// Package planner turns a validated job spec into the task graph the
// scheduler hands out: one render per highlight and one concat after them.
package planner

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// DefaultMaxAttempts is how often a task may fail before its job fails.
const DefaultMaxAttempts = 3

// concatSecondsPerClip estimates concat work: it only copies video, so it is
// far cheaper per second than a render.
const concatSecondsPerClip = 0.1

// Options tune a plan.
type Options struct {
	MaxAttempts int
}

// Plan builds the job and its tasks. It is pure: the same inputs give the
// same plan, and the plan travels inside the raft command so that replaying
// an old log never depends on today's planner.
func Plan(jobID string, s *montagev1.JobSpec, r *spec.Resolved, o Options) (*fsm.Job, []*fsm.Task, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	specBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s: encode spec: %w", jobID, err)
	}
	profBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Profile.ToProto())
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s: encode profile: %w", jobID, err)
	}
	name := r.Name
	if name == "" {
		name = jobID
	}
	job := &fsm.Job{ID: jobID, Name: name, Spec: specBytes, Profile: profBytes, Priority: r.Priority}
	tasks := make([]*fsm.Task, 0, len(r.Clips)+1)
	var deps []string
	total := 0.0
	for i, c := range r.Clips {
		id := fmt.Sprintf("%s-r%03d", jobID, i)
		tasks = append(tasks, &fsm.Task{
			ID:              id,
			JobID:           jobID,
			Type:            montagev1.TaskType_TASK_TYPE_RENDER,
			HighlightIndex:  i,
			MaxAttempts:     o.MaxAttempts,
			ExpectedSeconds: c.Duration,
			Render:          &fsm.RenderInput{URL: c.URL, Start: c.Start, Duration: c.Duration, Title: c.Title},
		})
		deps = append(deps, id)
		total += c.Duration
	}
	tasks = append(tasks, &fsm.Task{
		ID:              jobID + "-concat",
		JobID:           jobID,
		Type:            montagev1.TaskType_TASK_TYPE_CONCAT,
		HighlightIndex:  -1,
		DependsOn:       deps,
		MaxAttempts:     o.MaxAttempts,
		ExpectedSeconds: concatSecondsPerClip * total,
	})
	return job, tasks, nil
}
