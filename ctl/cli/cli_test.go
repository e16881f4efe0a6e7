package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func TestDescribe(t *testing.T) {
	cases := map[string]error{
		"InvalidArgument: highlights[3].duration: must be between 1 and 600 seconds": connect.NewError(connect.CodeInvalidArgument, errors.New("highlights[3].duration: must be between 1 and 600 seconds")),
		"FailedPrecondition: stale":  connect.NewError(connect.CodeFailedPrecondition, errors.New("stale")),
		"plain error stays as it is": errors.New("plain error stays as it is"),
	}
	for want, err := range cases {
		if got := describe(err); got != want {
			t.Errorf("describe = %q, want %q", got, want)
		}
	}
}

func sampleJob() *montagev1.Job {
	return &montagev1.Job{
		Id: "j1", Name: "demo", State: montagev1.JobState_JOB_STATE_FAILED, Progress: 0.5,
		Error: "render of highlight 1 failed after 3 attempts: Connection refused",
		Spec:  &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Title: "Clutch"}, {}}},
		Tasks: []*montagev1.Task{
			{Id: "j1-r000", Type: montagev1.TaskType_TASK_TYPE_RENDER, State: montagev1.TaskState_TASK_STATE_SUCCEEDED, Attempts: 1, MaxAttempts: 3, Progress: 1},
			{Id: "j1-r001", Type: montagev1.TaskType_TASK_TYPE_RENDER, HighlightIndex: 1, State: montagev1.TaskState_TASK_STATE_FAILED, Attempts: 3, MaxAttempts: 3, Error: "Connection refused"},
		},
	}
}

func TestPrintJob(t *testing.T) {
	var b bytes.Buffer
	j := sampleJob()
	j.BlockedAgents = []string{"flaky-pc"}
	if err := printJob(&b, "text", j); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"State:    failed", "Progress: 50%", "Error:    render of highlight 1", "j1-r001", "3/3", "Connection refused", "Blocked:  flaky-pc"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	// protojson varies its spacing on purpose; read the JSON back instead.
	var decoded map[string]any
	if err := printJob(&b, "json", sampleJob()); err != nil || json.Unmarshal(b.Bytes(), &decoded) != nil || decoded["state"] != "JOB_STATE_FAILED" {
		t.Errorf("json output %v:\n%s", err, b.String())
	}
	if err := printJob(&b, "yaml", sampleJob()); err == nil {
		t.Error("unknown format accepted")
	}
	b.Reset()
	if err := printJobs(&b, "text", []*montagev1.Job{sampleJob()}); err != nil || !strings.Contains(b.String(), "j1") || !strings.Contains(b.String(), "failed") {
		t.Errorf("list output %v:\n%s", err, b.String())
	}
}

func TestTaskLabelAndLines(t *testing.T) {
	j := sampleJob()
	if got := taskLabel(j, j.Tasks[0]); got != `highlight 1 "Clutch"` {
		t.Errorf("label = %q", got)
	}
	if got := taskLabel(j, j.Tasks[1]); got != "highlight 2" {
		t.Errorf("label = %q", got)
	}
	var b bytes.Buffer
	l := &lines{w: &b, seen: map[string]string{}}
	l.update(j)
	l.update(j) // unchanged: prints nothing more
	if n := strings.Count(b.String(), "\n"); n != 3 {
		t.Errorf("printed %d lines, want 3 (job + 2 tasks):\n%s", n, b.String())
	}
}

func TestMainReportsErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"submit", "/does/not/exist.yaml"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "read spec") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := Main([]string{"get"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "accepts 1 arg") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestFFmpegVersion(t *testing.T) {
	if v := ffmpegVersion("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026"); v != "5.1.9-0+deb12u1" {
		t.Errorf("got %q", v)
	}
	if v := ffmpegVersion(""); v != "?" {
		t.Errorf("empty: %q", v)
	}
}
