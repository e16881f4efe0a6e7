// Package planner turns a validated job spec into the task graph the
// scheduler hands out: renders (an optional intro, one per highlight or per
// chunk of a long highlight, an optional outro) and one concat after them.
package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

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

// PipelineVersion is part of every content key: bump it whenever a change to
// the agent's commands changes the bytes of a segment, so that old cached
// segments are never joined with new ones.
const PipelineVersion = "render-4"

// TitleSeconds is how long a highlight's title stays on screen.
const TitleSeconds = 4.0

// Capabilities a task can require besides its encoder.
const (
	NeedsYTDLP    = "yt-dlp"
	NeedsDrawtext = "drawtext"
	// NeedsTranscribe: an agent configured with a transcription service.
	NeedsTranscribe = "transcribe"
	// NeedsSubtitles: ffmpeg's libass subtitles filter and a font, to burn
	// a transcript into the picture.
	NeedsSubtitles = "subtitles"
)

// Options tune a plan.
type Options struct {
	MaxAttempts int
	// MaxTasks bounds a job's plan (0: DefaultMaxTasks).
	MaxTasks int
}

// DefaultMaxTasks bounds the tasks of one job: a six-hour montage in the
// shortest chunks (10 s) is 2,160 renders.
const DefaultMaxTasks = 2500

// TooManyTasks is a plan over Options.MaxTasks.
type TooManyTasks struct{ Tasks, Limit int }

func (e *TooManyTasks) Error() string {
	return fmt.Sprintf("the montage would be %d tasks; the limit is %d (raise chunk_seconds or split the montage)", e.Tasks, e.Limit)
}

// Chunk is one piece of a clip, in source seconds.
type Chunk struct {
	Start, Duration float64
}

// Chunks splits a clip longer than max into equal pieces whose lengths are
// whole output frames. These are nominal edges: the agents move each inner
// edge to the first source keyframe after it (and back onto the frame grid),
// so a chunk's accurate seek starts decoding at its own first frame.
func Chunks(start, duration, max, fps float64) []Chunk {
	n := int(math.Ceil(duration/max - 1e-9))
	if n <= 1 || fps <= 0 {
		return []Chunk{{start, duration}}
	}
	frames := int(math.Round(duration * fps))
	per := frames / n
	out := make([]Chunk, 0, n)
	for k := 0; k < n; k++ {
		f := per
		if k == n-1 {
			f = frames - per*(n-1)
		}
		out = append(out, Chunk{Start: start + float64(k*per)/fps, Duration: float64(f) / fps})
	}
	return out
}

// ContentKey hashes everything that determines a render's bytes: the
// pipeline version, the source and the cut, the encoding (with the encoder
// the job chose, not how it was chosen), fades and overlay.
func ContentKey(prof spec.Profile, r fsm.RenderInput) string {
	prof.HWAccel = ""
	b, _ := json.Marshal(struct {
		V string
		P spec.Profile
		R fsm.RenderInput
	}{PipelineVersion, prof, fsm.RenderInput{
		URL: r.URL, SourceType: r.SourceType, Start: r.Start, Duration: r.Duration,
		FadeIn: r.FadeIn, FadeOut: r.FadeOut, OverlayTitle: r.OverlayTitle, TitleSeconds: r.TitleSeconds,
		SnapStart: r.SnapStart, SnapEnd: r.SnapEnd, HighlightStart: r.HighlightStart,
	}})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Plan builds the job and its tasks. It is pure: the same inputs give the
// same plan, and the plan travels inside the raft command so that replaying
// an old log never depends on today's planner. r.Profile.Encoder must be set.
func Plan(jobID string, s *montagev1.JobSpec, r *spec.Resolved, o Options) (*fsm.Job, []*fsm.Task, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxTasks <= 0 {
		o.MaxTasks = DefaultMaxTasks
	}
	if r.Profile.Encoder == "" {
		return nil, nil, fmt.Errorf("plan %s: no encoder chosen", jobID)
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
	var (
		tasks      []*fsm.Task
		deps       []string
		total      float64
		totalBytes int64
	)
	burn := r.Transcribe && r.Subtitles == spec.SubtitlesBurn
	transcriptID := func(i int) string { return fmt.Sprintf("%s-t%03d", jobID, i) }
	transcripts := func() {
		// One transcript per highlight, in parallel with the renders. Its
		// failure costs the subtitles of that highlight, not the montage,
		// unless the renders burn it in: they wait for it and need it.
		for i, c := range r.Clips {
			requires := []string{NeedsTranscribe}
			if c.SourceType == spec.SourcePage {
				requires = append(requires, NeedsYTDLP)
			}
			tid := transcriptID(i)
			tasks = append(tasks, &fsm.Task{
				ID: tid, JobID: jobID, Type: montagev1.TaskType_TASK_TYPE_TRANSCRIBE, HighlightIndex: i, Role: "highlight",
				MaxAttempts: o.MaxAttempts, ExpectedSeconds: 0.2 * c.Duration, Optional: !burn, Requires: requires,
				Render: &fsm.RenderInput{SourceType: c.SourceType, Start: c.Start, Duration: c.Duration},
				// The extracted audio, a few KB a second, with room to spare.
				ExpectedBytes: int64(c.Duration*8000) + 1<<20,
			})
			deps = append(deps, tid)
		}
	}
	if burn {
		transcripts() // first: every render of a highlight waits for its own
	}
	add := func(id, role string, index int, c spec.Clip) {
		chunks := Chunks(c.Start, c.Duration, r.ChunkSeconds, r.Profile.FPS)
		if role != "highlight" || r.Profile.Cut != "" {
			// An intro's length is only an upper bound; a copying cut
			// encodes little and moves its edges to keyframes itself.
			chunks = []Chunk{{c.Start, c.Duration}}
		}
		for k, ch := range chunks {
			in := fsm.RenderInput{
				URL: c.URL, SourceType: c.SourceType, Start: ch.Start, Duration: ch.Duration, Title: c.Title,
				FadeIn: k == 0, FadeOut: k == len(chunks)-1,
			}
			if len(chunks) > 1 {
				in.SnapStart, in.SnapEnd, in.HighlightStart = k > 0, k < len(chunks)-1, c.Start
			}
			if r.Profile.TitleOverlay && role == "highlight" && k == 0 && c.Title != "" {
				in.OverlayTitle, in.TitleSeconds = c.Title, math.Min(TitleSeconds, ch.Duration)
			}
			tid := id
			if len(chunks) > 1 {
				tid = fmt.Sprintf("%s-c%02d", id, k)
			}
			requires := []string{r.Profile.Encoder}
			if c.SourceType == spec.SourcePage {
				requires = append(requires, NeedsYTDLP)
			}
			if in.OverlayTitle != "" {
				requires = append(requires, NeedsDrawtext)
			}
			key := ContentKey(r.Profile, in)
			var waits []string
			if burn && role == "highlight" {
				// The picture then depends on a transcript the key cannot
				// name (a service may answer differently each time): such a
				// render is neither cached nor taken from the cache.
				in.Burn, in.HighlightStart, key = transcriptID(index), c.Start, ""
				waits = []string{in.Burn}
				requires = append(requires, NeedsSubtitles)
			}
			need := ExpectedBytes(r.Profile, ch.Duration)
			totalBytes += need
			in.URL = "" // named once, in job.Sources
			tasks = append(tasks, &fsm.Task{
				ID: tid, JobID: jobID, Type: montagev1.TaskType_TASK_TYPE_RENDER,
				HighlightIndex: index, Role: role, Chunk: k, Chunks: len(chunks), DependsOn: waits,
				MaxAttempts: o.MaxAttempts, ExpectedSeconds: ch.Duration,
				Render: &in, CacheKey: key, Requires: requires, ExpectedBytes: need,
			})
			deps = append(deps, tid)
			total += ch.Duration
		}
	}
	if r.Intro != nil {
		job.IntroURL = r.Intro.URL
		add(jobID+"-intro", "intro", -1, *r.Intro)
	}
	for i, c := range r.Clips {
		job.Sources = append(job.Sources, c.URL)
		add(fmt.Sprintf("%s-r%03d", jobID, i), "highlight", i, c)
	}
	if r.Outro != nil {
		job.OutroURL = r.Outro.URL
		add(jobID+"-outro", "outro", -1, *r.Outro)
	}
	if r.Transcribe && !burn {
		transcripts()
	}
	if n := len(tasks) + 1; n > o.MaxTasks {
		return nil, nil, &TooManyTasks{Tasks: n, Limit: o.MaxTasks}
	}
	tasks = append(tasks, &fsm.Task{
		ID:              jobID + "-concat",
		JobID:           jobID,
		Type:            montagev1.TaskType_TASK_TYPE_CONCAT,
		HighlightIndex:  -1,
		DependsOn:       deps,
		MaxAttempts:     o.MaxAttempts,
		ExpectedSeconds: concatSecondsPerClip * total,
		// The segments downloaded, and the montage as big again.
		ExpectedBytes: totalBytes,
	})
	return job, tasks, nil
}

// ExpectedBytes estimates, generously, the disk a render of seconds needs
// on an agent: the segment (video at 0.2 bit per pixel, lossless audio) and
// the intermediates of the loudness pass, twice that.
func ExpectedBytes(p spec.Profile, seconds float64) int64 {
	perSecond := float64(p.Width*p.Height)*p.FPS*0.2/8 + 400_000
	return int64(2 * perSecond * seconds)
}
