package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/testmedia"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// cutSources are what streaming platforms hand out: H.264 High with
// B-frames reordered and a keyframe every 2 s, here with sync markers.
var cutSources = []testmedia.Source{
	{Name: "stream1080.mp4", Width: 1920, Height: 1080, FPS: "60", SampleRate: 48000, Channels: 2, Seconds: 30, Sync: true, BeepLevel: 0.5, Streamlike: true, HLS: true},
	{Name: "stream720.mp4", Width: 1280, Height: 720, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: 12, Sync: true, BeepLevel: 0.3, Streamlike: true},
}

func cutSpec(name, cut, loudness string, clips []syncClip) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nprofile:\n  resolution: 1920x1080\n  fps: 60\n  cut: %s\n  loudness: %q\n", name, cut, loudness)
	if cut == "smart" {
		b.WriteString("  fade: \"0.25\"\n")
	}
	b.WriteString("highlights:\n")
	for _, c := range clips {
		fmt.Fprintf(&b, "  - url: %s/%s\n    at: %g\n    duration: %g\n    title: %q\n", mediaURL, c.path, c.at, c.dur, c.title)
	}
	return b.String()
}

type cutManifest struct {
	Profile struct {
		Cut string `json:"cut"`
	} `json:"profile"`
	Parts []struct {
		SourceStart   float64 `json:"source_start_seconds"`
		Duration      float64 `json:"duration_seconds"`
		Cut           string  `json:"cut"`
		CutNote       string  `json:"cut_note"`
		CopiedSeconds float64 `json:"copied_seconds"`
	} `json:"parts"`
}

// runCutJob submits a spec, waits for it and downloads everything.
func runCutJob(t *testing.T, url, spec string) (string, *montagev1.Job, cutManifest) {
	t.Helper()
	res := ctl(t, url, "submit", writeSpec(t, spec), "--wait", "-q")
	if res.code != 0 {
		t.Fatalf("submit --wait exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	dir := t.TempDir()
	if r := ctl(t, url, "download", id, "--what", "all", "-o", dir); r.code != 0 {
		t.Fatalf("download exited %d: %s", r.code, r.stderr)
	}
	var man cutManifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	return filepath.Join(dir, "montage.mp4"), getJob(t, url, id), man
}

// decodesWithXerror decodes the whole montage, stopping at the first
// decoding error: the joined pieces must decode as one stream.
func decodesWithXerror(t *testing.T, path string) {
	t.Helper()
	if err := testmedia.DecodeErrors(context.Background(), path); err != nil {
		t.Errorf("the montage does not decode cleanly with -xerror: %v", err)
	}
}

// A smart cut of 1080p60 stream VODs is frame-exact and in sync: every
// flash and beep within one frame where the cut puts it, at the joins and
// inside, with copied GOPs between re-encoded edges; the whole montage
// decodes with -xerror (HLS too); a source that does not match the profile (720p30)
// is re-encoded whole and the manifest and the job say why.
func TestSmartCutKeepsSyncMarkers(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	startAgent(t, c.url, t.TempDir())
	clips := []syncClip{
		{path: "stream1080.mp4", at: 2.3, dur: 6, title: "Smart one"},
		{path: "stream1080.mp4", at: 11, dur: 7, title: "Smart two"},
		{path: "stream720.mp4", at: 3.4, dur: 4, title: "720p30 re-encoded"},
		{path: "stream1080.m3u8", at: 20.55, dur: 5.5, title: "Smart three, HLS"},
	}
	out, j, man := runCutJob(t, c.url, cutSpec("smart", "smart", strconv.FormatFloat(syncLoudness, 'f', -1, 64), clips))
	checkClipsSync(t, out, clips, 1920, 1080, "60/1", 15)
	decodesWithXerror(t, out)
	if man.Profile.Cut != "smart" || len(man.Parts) != len(clips) {
		t.Fatalf("manifest: cut %q, %d parts", man.Profile.Cut, len(man.Parts))
	}
	for i, p := range man.Parts {
		want := "smart"
		if i == 2 {
			want = "encode"
		}
		if p.Cut != want {
			t.Errorf("part %d made by %q (%s), want %s", i, p.Cut, p.CutNote, want)
		}
		if want == "smart" && (p.CopiedSeconds < 2 || math.Abs(p.SourceStart-clips[i].at) > 1.0/60) {
			t.Errorf("part %d: %.3f s copied, starting at %.4f; want whole GOPs copied and the asked start %g", i, p.CopiedSeconds, p.SourceStart, clips[i].at)
		}
	}
	if n := man.Parts[2].CutNote; !strings.Contains(n, "1280x720") {
		t.Errorf("the re-encoded part's note %q does not say why (its size)", n)
	}
	if w := strings.Join(j.GetWarnings(), "\n"); !strings.Contains(w, "re-encoded whole") || !strings.Contains(w, "1280x720") {
		t.Errorf("job warnings %q do not say the 720p30 highlight was re-encoded whole", w)
	}
}

// sourceKeyframes lists a served source's keyframe times.
func sourceKeyframes(t *testing.T, name string) []float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time",
		"-of", "csv=p=0", filepath.Join(mediaDir, name)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var ks []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.Trim(l, ","), 64)
		if err == nil {
			ks = append(ks, v)
		}
	}
	if len(ks) < 10 {
		t.Fatalf("%s has %d keyframes", name, len(ks))
	}
	return ks
}

// A keyframe cut copies from the keyframe at or before each start to the
// one at or after its end: the manifest's times are the copied keyframes'
// times and the chapters follow them. Sources that do not match are
// refused at once, naming what differs.
func TestKeyframeCut(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	startAgent(t, c.url, t.TempDir())
	clips := []syncClip{
		{path: "stream1080.mp4", at: 3.3, dur: 5, title: "One"},
		{path: "stream1080.mp4", at: 13.1, dur: 4, title: "Two"},
	}
	out, _, man := runCutJob(t, c.url, cutSpec("kf", "keyframe", "off", clips))
	decodesWithXerror(t, out)
	ks := sourceKeyframes(t, "stream1080.mp4")
	var durations []float64
	for i, cl := range clips {
		var before, after float64 = -1, -1
		for _, k := range ks {
			if k <= cl.at+1e-6 {
				before = k
			}
			if after < 0 && k >= cl.at+cl.dur-1e-6 {
				after = k
			}
		}
		p := man.Parts[i]
		if p.Cut != "copy" || math.Abs(p.SourceStart-before) > 1e-6 || math.Abs(p.Duration-(after-before)) > 1e-6 || math.Abs(p.CopiedSeconds-p.Duration) > 1e-6 {
			t.Errorf("part %d: %s from %.4f lasting %.4f (copied %.4f); the keyframes around %g+%g are %.4f and %.4f",
				i, p.Cut, p.SourceStart, p.Duration, p.CopiedSeconds, cl.at, cl.dur, before, after)
		}
		durations = append(durations, after-before)
	}
	checkMontage(t, out, durations, 1920, 1080, "60/1")

	mixed := append(clips, syncClip{path: "stream720.mp4", at: 2, dur: 4, title: "Other"})
	res := ctl(t, c.url, "submit", writeSpec(t, cutSpec("kf-mixed", "keyframe", "off", mixed)), "-q")
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	j := waitJobDone(t, c.url, strings.TrimSpace(res.stdout), 3*time.Minute)
	if j.GetState() != montagev1.JobState_JOB_STATE_FAILED {
		t.Fatalf("mixed sources: job %s, want failed", j.GetState())
	}
	for _, w := range []string{"highlight 3", "stream720.mp4", "size 1280x720 ≠ 1920x1080", "fps 30/1 ≠ 60/1", "cut: smart"} {
		if !strings.Contains(j.GetError(), w) {
			t.Errorf("mixed sources: the error does not name %q:\n%s", w, j.GetError())
		}
	}
	for _, task := range j.GetTasks() {
		if task.GetType() == montagev1.TaskType_TASK_TYPE_CONCAT && task.GetAttempts() != 1 {
			t.Errorf("the refused concat ran %d times; it cannot work, so once", task.GetAttempts())
		}
	}
}
