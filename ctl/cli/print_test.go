package cli

import (
	"bytes"
	"strings"
	"testing"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A compacted job prints its summary instead of a task table.
func TestPrintCompactedJob(t *testing.T) {
	j := &montagev1.Job{Id: "j1", Name: "weekly", State: montagev1.JobState_JOB_STATE_SUCCEEDED, Progress: 1,
		Outputs:     map[string]string{"montage": "jobs/j1/montage.mp4"},
		TaskSummary: &montagev1.TaskSummary{Tasks: 6, Cached: 2, Attempts: 7}}
	var b bytes.Buffer
	if err := printJob(&b, "text", j); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "Tasks:    6 (2 from the cache, 7 attempts); details were compacted") || strings.Contains(out, "TASK") {
		t.Fatalf("compacted job printed as:\n%s", out)
	}
}
