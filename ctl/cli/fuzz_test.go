package cli

import (
	"io"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// FuzzPrinters feeds arbitrary Job messages (any bytes that decode as one)
// to every printer a job reaches: get (text and JSON), list, watch lines and
// progress bars. None may panic, whatever a coordinator sends. The seed
// corpus in testdata/fuzz/FuzzPrinters holds jobs with intros, outros,
// chunks, negative and out-of-range indexes, unknown enum values, zero and
// invalid times, NaN and huge numbers.
func FuzzPrinters(f *testing.F) {
	for _, j := range printerSeeds() {
		b, err := proto.Marshal(j)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j := &montagev1.Job{}
		if proto.Unmarshal(b, j) != nil {
			return
		}
		_ = printJob(io.Discard, "text", j)
		_ = printJob(io.Discard, "json", j)
		_ = printJobs(io.Discard, "text", []*montagev1.Job{j, j})
		l := &lines{w: io.Discard, seen: map[string]string{}}
		l.update(j)
		l.update(j)
		bs := newBars(io.Discard)
		bs.update(j)
		bs.update(j)
		bs.done()
	})
}

func printerSeeds() []*montagev1.Job {
	render := montagev1.TaskType_TASK_TYPE_RENDER
	return []*montagev1.Job{
		jobWithIntroOutro(montagev1.JobState_JOB_STATE_SUCCEEDED),
		sampleJob(),
		{}, // no spec, no tasks, no times
		{
			Id: "j\x1b[2J", Name: "tab\tnewline\n\u202e right-to-left", State: montagev1.JobState(99), Progress: math.NaN(),
			CreatedAt: &timestamppb.Timestamp{Seconds: math.MaxInt64, Nanos: -5},
			Tasks: []*montagev1.Task{
				{Id: "x", Type: render, HighlightIndex: math.MaxInt32, Chunk: math.MaxInt32, Chunks: math.MaxInt32, Progress: math.Inf(1)},
				{Id: "y", Type: render, HighlightIndex: math.MinInt32, Progress: -3, Attempts: math.MaxInt32},
				{Id: "z", Type: montagev1.TaskType(42), State: montagev1.TaskState(-7), Role: "transcribe"},
				{Id: "w-outro", Type: render, HighlightIndex: -1},
			},
			Spec: &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Title: string(make([]byte, 5000))}}},
		},
	}
}
