package planner

import (
	"testing"

	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func TestPlan(t *testing.T) {
	s := &montagev1.JobSpec{Name: "p", Highlights: []*montagev1.Highlight{
		{Url: "http://h/a.mp4", At: "1:00", Duration: "10", Title: "A"},
		{Url: "http://h/b.m3u8", At: "5", Duration: "30", Title: "B"},
	}}
	r, err := spec.Validate(s)
	if err != nil {
		t.Fatal(err)
	}
	job, tasks, err := Plan("j1", s, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "j1" || job.Name != "p" || len(job.Spec) == 0 || len(job.Profile) == 0 {
		t.Fatalf("job = %+v", job)
	}
	want := []struct {
		id    string
		typ   montagev1.TaskType
		idx   int
		start float64
		dur   float64
		deps  int
	}{
		{"j1-r000", montagev1.TaskType_TASK_TYPE_RENDER, 0, 60, 10, 0},
		{"j1-r001", montagev1.TaskType_TASK_TYPE_RENDER, 1, 5, 30, 0},
		{"j1-concat", montagev1.TaskType_TASK_TYPE_CONCAT, -1, 0, 0, 2},
	}
	if len(tasks) != len(want) {
		t.Fatalf("%d tasks, want %d", len(tasks), len(want))
	}
	for i, w := range want {
		task := tasks[i]
		if task.ID != w.id || task.Type != w.typ || task.HighlightIndex != w.idx || len(task.DependsOn) != w.deps || task.MaxAttempts != DefaultMaxAttempts {
			t.Errorf("task %d = %+v, want %+v", i, task, w)
		}
		if w.typ == montagev1.TaskType_TASK_TYPE_RENDER && (task.Render.Start != w.start || task.Render.Duration != w.dur || task.ExpectedSeconds != w.dur) {
			t.Errorf("task %d render = %+v", i, task.Render)
		}
	}
	if tasks[2].ExpectedSeconds <= 0 || tasks[2].ExpectedSeconds >= 40 {
		t.Errorf("concat expected %v s, want a small positive estimate", tasks[2].ExpectedSeconds)
	}
	// Same inputs, same plan: the plan travels in the raft log.
	_, again, _ := Plan("j1", s, r, Options{MaxAttempts: 5})
	if again[0].MaxAttempts != 5 || again[0].ID != tasks[0].ID {
		t.Errorf("options not applied or ids unstable: %+v", again[0])
	}
	if name := func() string {
		j, _, _ := Plan("j2", &montagev1.JobSpec{Highlights: s.Highlights}, &spec.Resolved{Clips: r.Clips}, Options{})
		return j.Name
	}(); name != "j2" {
		t.Errorf("unnamed job named %q, want its id", name)
	}
}
