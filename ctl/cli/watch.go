package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

const barTotal = 1000

// wait follows a job through WatchJob until it ends, drawing a progress bar
// per highlight and one for the job on a terminal, and plain state-change
// lines otherwise. It reconnects if the stream breaks before the end.
func (a *app) wait(ctx context.Context, jobID string, quiet bool) error {
	var ui progressUI = &lines{w: a.errOut, seen: map[string]string{}}
	if !quiet && isTerminal(a.errOut) {
		ui = newBars(a.errOut)
	} else if quiet {
		ui = nop{}
	}
	var last *montagev1.Job
	// A broken stream (coordinator restart, leader change) is reopened; the
	// first message of a new stream is the whole job, so nothing is missed.
	lastOK := time.Now()
	for {
		stream, err := a.jobs().WatchJob(ctx, connect.NewRequest(&montagev1.WatchJobRequest{JobId: jobID}))
		if err == nil {
			for stream.Receive() {
				last = stream.Msg().GetJob()
				lastOK = time.Now()
				ui.update(last)
			}
			err = stream.Err()
			stream.Close()
		}
		if last != nil && terminal(last.GetState()) {
			break
		}
		if c := connect.CodeOf(err); c == connect.CodeNotFound || c == connect.CodeInvalidArgument || time.Since(lastOK) > 2*time.Minute {
			ui.done()
			if err == nil {
				err = fmt.Errorf("watch of job %s ended before the job did", jobID)
			}
			return err
		}
		select {
		case <-ctx.Done():
			ui.done()
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	ui.done()
	switch last.GetState() {
	case montagev1.JobState_JOB_STATE_SUCCEEDED:
		if !quiet {
			fmt.Fprintf(a.out, "job %s succeeded: %s\ndownload it with: montagectl download %s -o montage.mp4\n",
				jobID, last.GetOutputs()["montage"], jobID)
		}
		return nil
	case montagev1.JobState_JOB_STATE_CANCELED:
		return &ExitError{Code: CodeJobCanceled, Msg: fmt.Sprintf("job %s was canceled", jobID)}
	default:
		return &ExitError{Code: CodeJobFailed, Msg: fmt.Sprintf("job %s failed: %s", jobID, last.GetError())}
	}
}

func terminal(s montagev1.JobState) bool {
	return s == montagev1.JobState_JOB_STATE_SUCCEEDED || s == montagev1.JobState_JOB_STATE_FAILED || s == montagev1.JobState_JOB_STATE_CANCELED
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type progressUI interface {
	update(*montagev1.Job)
	done()
}

type nop struct{}

func (nop) update(*montagev1.Job) {}
func (nop) done()                 {}

// lines prints one line per task state change: readable in logs and CI.
type lines struct {
	w    io.Writer
	seen map[string]string
	job  string
}

func (l *lines) update(j *montagev1.Job) {
	if s := stateWord(j.GetState()); s != l.job {
		fmt.Fprintf(l.w, "job %s: %s\n", printable(j.GetId(), 80), s)
		l.job = s
	}
	for _, t := range j.GetTasks() {
		s := taskStateWord(t.GetState())
		if l.seen[t.GetId()] != s {
			l.seen[t.GetId()] = s
			fmt.Fprintf(l.w, "  %s: %s (attempt %d)\n", taskLabel(j, t), s, t.GetAttempts())
		}
	}
}

func (l *lines) done() {}

// taskLabel names a task the way people read it: "intro", "outro",
// "concat", `highlight 2 "The clutch"`, `highlight 1 part 2/3`. It accepts
// any Task a coordinator can send, a newer coordinator's included.
func taskLabel(j *montagev1.Job, t *montagev1.Task) string {
	var label string
	switch t.GetType() {
	case montagev1.TaskType_TASK_TYPE_CONCAT:
		return "concat"
	case montagev1.TaskType_TASK_TYPE_RENDER:
		id := t.GetId()
		switch role := t.GetRole(); {
		case role == "intro" || role == "outro":
			label = role
		case t.GetHighlightIndex() >= 0:
			i := int64(t.GetHighlightIndex())
			label = fmt.Sprintf("highlight %d", i+1)
			if hs := j.GetSpec().GetHighlights(); i < int64(len(hs)) {
				if title := printable(hs[i].GetTitle(), 40); title != "" {
					label += fmt.Sprintf(" %q", title)
				}
			}
		// Coordinators before the role field named these tasks only by id.
		case strings.HasSuffix(id, "-intro"):
			label = "intro"
		case strings.HasSuffix(id, "-outro"):
			label = "outro"
		default:
			label = "render " + printable(id, 40)
		}
	default:
		return taskTypeWord(t.GetType()) + " " + printable(t.GetId(), 40)
	}
	if n := t.GetChunks(); n > 1 {
		label += fmt.Sprintf(" part %d/%d", int64(t.GetChunk())+1, n)
	}
	return label
}

// bars draws mpb progress bars.
type bars struct {
	p     *mpb.Progress
	job   *mpb.Bar
	tasks map[string]*mpb.Bar
	// state is read by mpb's render goroutine while update writes it.
	mu    sync.Mutex
	state map[string]string
}

func newBars(w io.Writer) *bars {
	return &bars{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), tasks: map[string]*mpb.Bar{}, state: map[string]string{}}
}

func (b *bars) bar(name, id string) *mpb.Bar {
	return b.p.AddBar(barTotal,
		mpb.PrependDecorators(decor.Name(printable(name, barName), decor.WC{W: barName + 1, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.Any(func(decor.Statistics) string { return " " + b.stateOf(id) })),
	)
}

// barName is the widest task label a bar shows.
const barName = 44

func (b *bars) stateOf(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state[id]
}

func (b *bars) setState(id, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state[id] = s
}

func (b *bars) update(j *montagev1.Job) {
	for _, t := range j.GetTasks() {
		b.setState(t.GetId(), taskStateWord(t.GetState()))
		bar := b.tasks[t.GetId()]
		if bar == nil {
			bar = b.bar(taskLabel(j, t), t.GetId())
			b.tasks[t.GetId()] = bar
		}
		bar.SetCurrent(int64(fraction(t.GetProgress()) * barTotal))
	}
	if b.job == nil {
		b.job = b.bar("job "+printable(j.GetId(), 40), "job")
	}
	b.setState("job", stateWord(j.GetState()))
	b.job.SetCurrent(int64(fraction(j.GetProgress()) * barTotal))
}

func (b *bars) done() {
	for _, bar := range b.tasks {
		bar.Abort(false)
	}
	if b.job != nil {
		b.job.Abort(false)
	}
	b.p.Wait()
}
