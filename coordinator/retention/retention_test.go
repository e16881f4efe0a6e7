package retention

import (
	"reflect"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func state() *fsm.State {
	s := fsm.New()
	add := func(id string, seq uint64, st montagev1.JobState, finishedAgo time.Duration, edit func(*fsm.Job)) {
		j := &fsm.Job{ID: id, Seq: seq, State: st}
		if finishedAgo > 0 {
			j.FinishedAt = now.Add(-finishedAgo)
		}
		if edit != nil {
			edit(j)
		}
		s.Jobs[id] = j
	}
	add("running", 1, montagev1.JobState_JOB_STATE_RUNNING, 0, nil)
	add("fresh-ok", 2, montagev1.JobState_JOB_STATE_SUCCEEDED, time.Minute, nil)
	add("final-ok", 3, montagev1.JobState_JOB_STATE_SUCCEEDED, time.Minute, func(j *fsm.Job) { j.Finalized, j.FinalizedAt = true, now.Add(-time.Minute) })
	add("just-final", 9, montagev1.JobState_JOB_STATE_SUCCEEDED, time.Minute, func(j *fsm.Job) { j.Finalized, j.FinalizedAt = true, now.Add(-time.Second) })
	add("clean-ok", 4, montagev1.JobState_JOB_STATE_SUCCEEDED, time.Minute, func(j *fsm.Job) { j.Finalized, j.SegmentsPurged = true, true })
	add("failed", 5, montagev1.JobState_JOB_STATE_FAILED, time.Minute, nil)
	add("old-ok", 6, montagev1.JobState_JOB_STATE_SUCCEEDED, 48*time.Hour, func(j *fsm.Job) { j.Finalized, j.SegmentsPurged = true, true })
	add("old-canceled", 7, montagev1.JobState_JOB_STATE_CANCELED, 48*time.Hour, nil)
	add("half-deleted", 8, montagev1.JobState_JOB_STATE_SUCCEEDED, time.Minute, func(j *fsm.Job) { j.Deleting = true })
	s.Reindex()
	return s
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name string
		p    Policy
		want []Action
	}{
		// Failed and canceled jobs are purged (and so compacted) after the
		// delay too; succeeded ones once finalized.
		{"keep forever", Policy{}, []Action{
			{Finalize, "fresh-ok"}, {PurgeSegments, "final-ok"}, {PurgeSegments, "failed"}, {PurgeSegments, "old-canceled"},
			{Delete, "half-deleted"}, {PurgeSegments, "just-final"},
		}},
		{"one day, purge after 30 s", Policy{Retention: 24 * time.Hour, PurgeDelay: 30 * time.Second}, []Action{
			{Finalize, "fresh-ok"}, {PurgeSegments, "final-ok"}, {PurgeSegments, "failed"}, {Delete, "old-ok"},
			{Delete, "old-canceled"}, {Delete, "half-deleted"},
		}},
	}
	for _, c := range cases {
		if got := Plan(state(), now, c.p); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Plan = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOrphaned(t *testing.T) {
	s := fsm.New()
	s.Tasks["j1-r000"] = &fsm.Task{ID: "j1-r000", State: montagev1.TaskState_TASK_STATE_LEASED, Attempts: 2, LeaseToken: 20}
	s.Tasks["j1-r001"] = &fsm.Task{ID: "j1-r001", State: montagev1.TaskState_TASK_STATE_QUEUED, Attempts: 1}
	s.Tasks["j1-concat"] = &fsm.Task{ID: "j1-concat", State: montagev1.TaskState_TASK_STATE_LEASED, Attempts: 1, LeaseToken: 31}
	ups := []blob.Upload{
		{Key: blob.SegmentKey("j1", "j1-r000", 20), UploadID: "live"},
		{Key: blob.SegmentKey("j1", "j1-r000", 12), UploadID: "old-attempt"},
		{Key: blob.SegmentKey("j1", "j1-r001", 14), UploadID: "expired"},
		{Key: blob.MontageAttemptKey("j1", 31), UploadID: "live-concat"},
		{Key: blob.SegmentKey("gone", "gone-r000", 1), UploadID: "deleted-job"},
		{Key: "jobs/j1/montage.mp4", UploadID: "not-ours"},
	}
	var got []string
	for _, u := range Orphaned(s, ups) {
		got = append(got, u.UploadID)
	}
	want := []string{"old-attempt", "expired", "deleted-job", "not-ours"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Orphaned = %v, want %v", got, want)
	}
}
