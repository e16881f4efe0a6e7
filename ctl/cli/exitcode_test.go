package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// fakeJobs is a JobService whose submitted job ends as the test says.
type fakeJobs struct {
	montagev1connect.UnimplementedJobServiceHandler
	final     *montagev1.Job
	submitErr error
}

func (f *fakeJobs) SubmitJob(_ context.Context, r *connect.Request[montagev1.SubmitJobRequest]) (*connect.Response[montagev1.SubmitJobResponse], error) {
	if f.submitErr != nil {
		return nil, f.submitErr
	}
	return connect.NewResponse(&montagev1.SubmitJobResponse{Job: &montagev1.Job{Id: f.final.GetId(), Spec: r.Msg.GetSpec()}}), nil
}

func (f *fakeJobs) WatchJob(_ context.Context, _ *connect.Request[montagev1.WatchJobRequest], s *connect.ServerStream[montagev1.WatchJobResponse]) error {
	running := &montagev1.Job{Id: f.final.GetId(), State: montagev1.JobState_JOB_STATE_RUNNING, Spec: f.final.GetSpec(), Tasks: f.final.GetTasks()}
	if err := s.Send(&montagev1.WatchJobResponse{Job: running}); err != nil {
		return err
	}
	return s.Send(&montagev1.WatchJobResponse{Job: f.final})
}

func serveJobs(t *testing.T, f *fakeJobs) string {
	t.Helper()
	path, h := montagev1connect.NewJobServiceHandler(f)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func specFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(p, []byte("highlights: [{url: 'http://127.0.0.1:1/a.mp4', at: 1, duration: 2}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jobWithIntroOutro is what a coordinator sends for a spec with an intro,
// a chunked highlight and an outro: the job that crashed montagectl.
func jobWithIntroOutro(state montagev1.JobState) *montagev1.Job {
	done := montagev1.TaskState_TASK_STATE_SUCCEEDED
	render := montagev1.TaskType_TASK_TYPE_RENDER
	return &montagev1.Job{
		Id: "j1", State: state, Progress: 1, Error: "render of highlight 1 failed",
		Spec: &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Title: "Opening"}}},
		Tasks: []*montagev1.Task{
			{Id: "j1-intro", Type: render, HighlightIndex: -1, Role: "intro", State: done, Progress: 1},
			{Id: "j1-r000-c0", Type: render, Role: "highlight", Chunks: 2, State: done, Progress: 1},
			{Id: "j1-r000-c1", Type: render, Role: "highlight", Chunk: 1, Chunks: 2, State: done, Progress: 1},
			{Id: "j1-outro", Type: render, HighlightIndex: -1, Role: "outro", State: done, Progress: 1},
			{Id: "j1-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, HighlightIndex: -1, State: done, Progress: 1},
		},
	}
}

// The exit-code contract: 0 succeeded, 2 failed, 3 canceled, 1 anything
// else, with the intro and outro that used to panic in every case.
func TestSubmitWaitExitCodes(t *testing.T) {
	cases := []struct {
		name      string
		state     montagev1.JobState
		submitErr error
		want      int
		stderr    string
	}{
		{"succeeded", montagev1.JobState_JOB_STATE_SUCCEEDED, nil, 0, "intro: succeeded"},
		{"failed", montagev1.JobState_JOB_STATE_FAILED, nil, 2, "job j1 failed: render of highlight 1 failed"},
		{"canceled", montagev1.JobState_JOB_STATE_CANCELED, nil, 3, "job j1 was canceled"},
		{"refused", 0, connect.NewError(connect.CodeInvalidArgument, errors.New("highlights[0].duration: must be between 1 and 600 seconds")), 1,
			"InvalidArgument: highlights[0].duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := serveJobs(t, &fakeJobs{final: jobWithIntroOutro(c.state), submitErr: c.submitErr})
			var out, errOut bytes.Buffer
			code := Main([]string{"--addr", url, "submit", specFile(t), "--wait"}, &out, &errOut)
			if code != c.want {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, c.want, out.String(), errOut.String())
			}
			if !strings.Contains(errOut.String(), c.stderr) {
				t.Errorf("stderr lacks %q:\n%s", c.stderr, errOut.String())
			}
			if s := out.String() + errOut.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
				t.Errorf("output shows a panic:\n%s", s)
			}
		})
	}
	// A coordinator that is not there is "anything else" too.
	var out, errOut bytes.Buffer
	if code := Main([]string{"--addr", "http://127.0.0.1:1", "get", "j1"}, &out, &errOut); code != 1 {
		t.Errorf("unreachable coordinator: exit %d, want 1 (%s)", code, errOut.String())
	}
	// So is a token file that cannot be read, before any call is made.
	if code := Main([]string{"--addr", "http://127.0.0.1:1", "--token-file", filepath.Join(t.TempDir(), "missing"), "list"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "--token-file") {
		t.Errorf("unreadable token file: exit %d, want 1 naming --token-file (%s)", code, errOut.String())
	}
}

// Anything unforeseen becomes one line naming the command and the version,
// with exit code 1, never the job's 2 or 3.
func TestPanicBecomesOneLine(t *testing.T) {
	root := &cobra.Command{Use: "montagectl", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(&cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error {
		var hs []int
		_ = hs[-1+len(hs)] // index out of range, as the intro label once was
		return nil
	}})
	var errOut bytes.Buffer
	code := run(root, []string{"boom"}, &errOut)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	s := errOut.String()
	if strings.Count(s, "\n") != 1 || !strings.Contains(s, `"montagectl boom"`) || !strings.Contains(s, "version ") || !strings.Contains(s, "report") {
		t.Errorf("want one line naming the command, the version and asking for a report; got:\n%s", s)
	}
	if strings.Contains(s, "goroutine") {
		t.Errorf("stack trace printed:\n%s", s)
	}
}

// --addr takes several coordinators: a call that cannot reach the first
// goes to the next; a malformed entry is refused by name.
func TestAddrFailover(t *testing.T) {
	live := serveJobs(t, &fakeJobs{final: jobWithIntroOutro(montagev1.JobState_JOB_STATE_SUCCEEDED)})
	var out, errOut bytes.Buffer
	if code := Main([]string{"--addr", "http://127.0.0.1:1," + live, "submit", specFile(t)}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "submitted") {
		t.Fatalf("failover to the second coordinator: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	t.Setenv("MONTAGE_ADDR", "http://127.0.0.1:1 , "+live)
	out.Reset()
	if code := Main([]string{"submit", specFile(t)}, &out, &errOut); code != 0 {
		t.Fatalf("MONTAGE_ADDR with two coordinators: exit %d\n%s", code, errOut.String())
	}
	errOut.Reset()
	if code := Main([]string{"--addr", "http://127.0.0.1:1,coord2:7400", "get", "j1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `--addr "coord2:7400"`) {
		t.Fatalf("a malformed address: exit %d\n%s", code, errOut.String())
	}
}
