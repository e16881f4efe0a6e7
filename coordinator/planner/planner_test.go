package planner

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stream-montages/montage/coordinator/fsm"
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
	if _, _, err := Plan("j1", s, r, Options{}); err == nil {
		t.Fatal("a plan without a chosen encoder was accepted")
	}
	r.Profile.Encoder = "libx264"
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
		j, _, _ := Plan("j2", &montagev1.JobSpec{Highlights: s.Highlights}, &spec.Resolved{Clips: r.Clips, Profile: r.Profile, ChunkSeconds: 60}, Options{})
		return j.Name
	}(); name != "j2" {
		t.Errorf("unnamed job named %q, want its id", name)
	}
}

func TestChunks(t *testing.T) {
	cases := []struct {
		name                 string
		start, dur, max, fps float64
		want                 []Chunk
	}{
		{"short", 10, 30, 60, 30, []Chunk{{10, 30}}},
		{"exactly max", 0, 60, 60, 30, []Chunk{{0, 60}}},
		{"two", 100, 90, 60, 30, []Chunk{{100, 45}, {145, 45}}},
		{"three uneven", 0, 130, 60, 30, []Chunk{{0, 1300.0 / 30}, {1300.0 / 30, 1300.0 / 30}, {2600.0 / 30, 1300.0 / 30}}},
		{"ntsc", 0, 61, 60, 30000.0 / 1001, nil},
	}
	for _, c := range cases {
		got := Chunks(c.start, c.dur, c.max, c.fps)
		if c.want != nil {
			if len(got) != len(c.want) {
				t.Fatalf("%s: %v, want %v", c.name, got, c.want)
			}
			for i := range got {
				if math.Abs(got[i].Start-c.want[i].Start) > 1e-9 || math.Abs(got[i].Duration-c.want[i].Duration) > 1e-9 {
					t.Errorf("%s: chunk %d = %v, want %v", c.name, i, got[i], c.want[i])
				}
			}
		}
		// Whatever the case: contiguous, whole frames, summing to the clip.
		sum, at := 0.0, c.start
		for i, ch := range got {
			if math.Abs(ch.Start-at) > 1e-9 {
				t.Errorf("%s: chunk %d starts at %v, want %v", c.name, i, ch.Start, at)
			}
			if f := ch.Duration * c.fps; math.Abs(f-math.Round(f)) > 1e-6 && len(got) > 1 {
				t.Errorf("%s: chunk %d is %v frames, not whole", c.name, i, f)
			}
			if ch.Duration > c.max+1e-9 {
				t.Errorf("%s: chunk %d is %v s, over %v", c.name, i, ch.Duration, c.max)
			}
			at += ch.Duration
			sum += ch.Duration
		}
		if math.Abs(sum-c.dur) > 1/c.fps {
			t.Errorf("%s: chunks sum to %v, want %v within a frame", c.name, sum, c.dur)
		}
	}
}

func TestPlanChunksIntroOutroAndRequirements(t *testing.T) {
	s := &montagev1.JobSpec{
		Highlights: []*montagev1.Highlight{
			{Url: "http://h/a.mp4", At: "0", Duration: "150", Title: "Long"},
			{Url: "https://www.youtube.com/watch?v=x", At: "30", Duration: "20", Title: "Page"},
		},
		Intro:   &montagev1.Highlight{Url: "http://h/intro.mp4", Duration: "5"},
		Outro:   &montagev1.Highlight{Url: "http://h/outro.mp4"},
		Profile: &montagev1.RenderProfile{TitleOverlay: true},
	}
	r, err := spec.Validate(s)
	if err != nil {
		t.Fatal(err)
	}
	r.Profile.Encoder = "h264_nvenc"
	_, tasks, err := Plan("j", s, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range tasks {
		ids = append(ids, task.ID)
	}
	want := []string{"j-intro", "j-r000-c00", "j-r000-c01", "j-r000-c02", "j-r001", "j-outro", "j-concat"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("tasks %v, want %v", ids, want)
	}
	if got := tasks[len(tasks)-1].DependsOn; len(got) != 6 {
		t.Errorf("concat depends on %v", got)
	}
	c0, c1, c2 := tasks[1].Render, tasks[2].Render, tasks[3].Render
	if !c0.FadeIn || c0.FadeOut || c1.FadeIn || c1.FadeOut || c2.FadeIn || !c2.FadeOut {
		t.Errorf("fades belong at the highlight's edges only: %+v %+v %+v", c0, c1, c2)
	}
	if c0.SnapStart || !c0.SnapEnd || !c1.SnapStart || !c1.SnapEnd || !c2.SnapStart || c2.SnapEnd || c1.HighlightStart != 0 {
		t.Errorf("only inner chunk edges snap to keyframes: %+v %+v %+v", c0, c1, c2)
	}
	if r := tasks[4].Render; r.SnapStart || r.SnapEnd {
		t.Errorf("an unchunked highlight snaps: %+v", r)
	}
	if c0.OverlayTitle != "Long" || c1.OverlayTitle != "" || c0.TitleSeconds != TitleSeconds {
		t.Errorf("title only on the first chunk: %+v %+v", c0, c1)
	}
	if tasks[0].Role != "intro" || tasks[0].Render.OverlayTitle != "" || tasks[0].Render.Duration != 5 {
		t.Errorf("intro = %+v %+v", tasks[0], tasks[0].Render)
	}
	if got := strings.Join(tasks[4].Requires, ","); got != "h264_nvenc,yt-dlp,drawtext" {
		t.Errorf("page task requires %s", got)
	}
	if got := strings.Join(tasks[0].Requires, ","); got != "h264_nvenc" {
		t.Errorf("intro requires %s", got)
	}
	keys := map[string]bool{}
	for _, task := range tasks[:6] {
		if len(task.CacheKey) != 64 || keys[task.CacheKey] {
			t.Errorf("task %s content key %q missing or repeated", task.ID, task.CacheKey)
		}
		keys[task.CacheKey] = true
	}
}

func TestContentKey(t *testing.T) {
	p, _ := spec.ResolveProfile(nil)
	p.Encoder = "libx264"
	in := fsm.RenderInput{URL: "http://h/a.mp4", SourceType: "file", Start: 10, Duration: 20, Title: "A", FadeIn: true, FadeOut: true}
	base := ContentKey(p, in)
	same := p
	same.HWAccel = "none" // how the encoder was chosen does not change the bytes
	if ContentKey(same, in) != base {
		t.Error("hwaccel changed the key")
	}
	retitled := in
	retitled.Title = "B" // the chapter title is not in the segment
	if ContentKey(p, retitled) != base {
		t.Error("a title that is not drawn changed the key")
	}
	changes := map[string]func(p *spec.Profile, r *fsm.RenderInput){
		"start":    func(_ *spec.Profile, r *fsm.RenderInput) { r.Start = 10.5 },
		"url":      func(_ *spec.Profile, r *fsm.RenderInput) { r.URL = "http://h/b.mp4" },
		"fade":     func(_ *spec.Profile, r *fsm.RenderInput) { r.FadeOut = false },
		"overlay":  func(_ *spec.Profile, r *fsm.RenderInput) { r.OverlayTitle = "A" },
		"encoder":  func(p *spec.Profile, _ *fsm.RenderInput) { p.Encoder = "h264_nvenc" },
		"loudness": func(p *spec.Profile, _ *fsm.RenderInput) { p.Loudness = -23 },
		"size":     func(p *spec.Profile, _ *fsm.RenderInput) { p.Width = 1920 },
		"snap":     func(_ *spec.Profile, r *fsm.RenderInput) { r.SnapEnd = true },
	}
	for name, change := range changes {
		p2, in2 := p, in
		change(&p2, &in2)
		if ContentKey(p2, in2) == base {
			t.Errorf("changing %s kept the key", name)
		}
	}
}

// The largest montage a spec allows (six hours in 10-s chunks, long URLs)
// plans into one raft entry of a few megabytes: each source URL is named
// once per job, not once per chunk.
func TestLargestPlanStaysSmall(t *testing.T) {
	s := &montagev1.JobSpec{ChunkSeconds: 10}
	for i := 0; i < 360; i++ {
		s.Highlights = append(s.Highlights, &montagev1.Highlight{
			Url: "https://cdn.example/" + strings.Repeat("v", 2000) + "/" + string(rune('a'+i%26)) + ".mp4", At: "1", Duration: "60", Title: "T"})
	}
	r, err := spec.Validate(s)
	if err != nil {
		t.Fatal(err)
	}
	r.Profile.Encoder = "libx264"
	job, tasks, err := Plan("j1", s, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 360*6+1 {
		t.Fatalf("%d tasks", len(tasks))
	}
	b, err := (&fsm.Command{Submit: &fsm.SubmitCmd{Job: job, Tasks: tasks}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), strings.Repeat("v", 2000)); n != 360 { // in Sources (the spec is encoded)
		t.Errorf("source URLs appear %d times for 360 highlights, want once each", n)
	}
	if len(b) > 4<<20 {
		t.Errorf("the plan's raft entry is %d bytes, want under 4 MiB", len(b))
	}
	t.Logf("2,161 tasks in a raft entry of %.1f MB", float64(len(b))/1e6)
	st := fsm.New()
	st.Apply(1, &fsm.Command{Submit: &fsm.SubmitCmd{Job: job, Tasks: tasks}})
	if got := st.SourceOf(st.Tasks[tasks[7].ID]); got != s.Highlights[1].Url {
		t.Errorf("SourceOf(chunk of highlight 2) = %q", got)
	}
	_, _, err = Plan("j1", s, r, Options{MaxTasks: 100})
	var tooMany *TooManyTasks
	if !errors.As(err, &tooMany) || tooMany.Tasks != 2161 {
		t.Errorf("plan over the cap: %v", err)
	}
}

// subtitles: burn plans the transcripts first, as required tasks; each
// chunk of a highlight waits for its highlight's transcript, burns it from
// the highlight's start, needs libass and is never cached; intro and outro
// neither wait nor burn. Sidecar transcripts stay optional and last.
func TestPlanBurnedSubtitles(t *testing.T) {
	mk := func(subs string) []*fsm.Task {
		t.Helper()
		s := &montagev1.JobSpec{
			Highlights: []*montagev1.Highlight{
				{Url: "http://h/a.mp4", At: "10", Duration: "150"},
				{Url: "http://h/b.mp4", At: "30", Duration: "20"},
			},
			Intro:      &montagev1.Highlight{Url: "http://h/intro.mp4", Duration: "5"},
			Transcribe: true, Subtitles: subs,
		}
		r, err := spec.Validate(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Profile.Encoder = "libx264"
		_, tasks, err := Plan("j", s, r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tasks
	}
	ids := func(tasks []*fsm.Task) string {
		var out []string
		for _, task := range tasks {
			out = append(out, task.ID)
		}
		return strings.Join(out, " ")
	}
	burn := mk("burn")
	if got, want := ids(burn), "j-t000 j-t001 j-intro j-r000-c00 j-r000-c01 j-r000-c02 j-r001 j-concat"; got != want {
		t.Fatalf("burn plan %s, want %s", got, want)
	}
	for _, task := range burn[:2] {
		if task.Optional {
			t.Errorf("%s: a transcript to burn is optional", task.ID)
		}
	}
	for _, task := range burn[3:7] {
		want := "j-t000"
		if task.HighlightIndex == 1 {
			want = "j-t001"
		}
		if strings.Join(task.DependsOn, ",") != want || task.Render.Burn != want || task.CacheKey != "" ||
			!slices.Contains(task.Requires, NeedsSubtitles) {
			t.Errorf("%s: depends on %v, burns %q, cache key %q, requires %v", task.ID, task.DependsOn, task.Render.Burn, task.CacheKey, task.Requires)
		}
	}
	if burn[4].Render.HighlightStart != 10 || burn[6].Render.HighlightStart != 30 {
		t.Errorf("burn origin: chunk %v, single %v", burn[4].Render.HighlightStart, burn[6].Render.HighlightStart)
	}
	if in := burn[2]; len(in.DependsOn) != 0 || in.Render.Burn != "" || in.CacheKey == "" || slices.Contains(in.Requires, NeedsSubtitles) {
		t.Errorf("the intro waits or burns: %+v %+v", in, in.Render)
	}
	side := mk("sidecar")
	if got, want := ids(side), "j-intro j-r000-c00 j-r000-c01 j-r000-c02 j-r001 j-t000 j-t001 j-concat"; got != want {
		t.Fatalf("sidecar plan %s, want %s", got, want)
	}
	for _, task := range side[:5] {
		if len(task.DependsOn) != 0 || task.Render.Burn != "" || task.CacheKey == "" {
			t.Errorf("%s waits or burns with sidecar subtitles", task.ID)
		}
	}
	if !side[5].Optional || !side[6].Optional {
		t.Error("sidecar transcripts are required")
	}
}
