package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/media"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// spoolSegments writes segments as renders leave them (H.264, ALAC 48 kHz
// stereo lasting exactly as long as the video), each with another tone.
func spoolSegments(t *testing.T, dir string, seconds []float64) ([]string, []*montagev1.ConcatSegment) {
	t.Helper()
	var paths []string
	var segs []*montagev1.ConcatSegment
	for i, d := range seconds {
		p := filepath.Join(dir, fmt.Sprintf("render-%d.mp4", i))
		out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y",
			"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=160x120:rate=30:duration=%v", d),
			"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000:duration=%v,aformat=channel_layouts=stereo", 300+150*i, d),
			"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "alac", p).CombinedOutput()
		if err != nil {
			t.Fatalf("segment %d: %v: %s", i, err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		paths = append(paths, p)
		segs = append(segs, &montagev1.ConcatSegment{Title: fmt.Sprintf("part %d", i), DurationSeconds: d, HighlightIndex: int32(i),
			Role: "highlight", Sha256: hex.EncodeToString(sum[:]), Size: int64(len(b))})
	}
	return paths, segs
}

// audioMD5 is the MD5 of a file's audio packets as stored.
func audioMD5(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-c", "copy", "-f", "md5", "-").Output()
	if err != nil {
		t.Fatalf("audio of %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// The montage's audio is one AAC encode of the segments' audio in order,
// whether the concat encodes it all or carries on an encode the agent began
// while it rendered the first segments: the AAC packets are the same bytes
// as those of a single ffmpeg encoding the joined segments, the montages
// are the same file, and a kept encode that does not match the concat's
// segments is not used.
func TestMontageAudioAhead(t *testing.T) {
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// 31 frames and a second and a half: lengths that are not whole AAC
	// frames, so each join falls inside one.
	paths, segs := spoolSegments(t, dir, []float64{31.0 / 30, 1.5, 2})
	list := filepath.Join(dir, "ref.ffconcat")
	if err := os.WriteFile(list, []byte(media.ConcatList(paths)), 0o640); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref.m4a")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", list,
		"-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", ref).CombinedOutput(); err != nil {
		t.Fatalf("reference encode: %v: %s", err, out)
	}
	want := audioMD5(t, ref)
	prof := &montagev1.RenderProfile{Resolution: "160x120", Fps: 30, VideoCodec: "h264", Quality: 23, AudioBitrate: "128k",
		Loudness: "off", Fade: "0", Hwaccel: "none", Encoder: "libx264"}
	r := Renderer{Tools: tools}
	concat := func(name string, ahead *montageAudio) string {
		t.Helper()
		wd := filepath.Join(dir, name)
		if err := os.MkdirAll(wd, 0o750); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(wd, "montage.mp4")
		n, _, err := r.concat(ctx, "j", prof, segs, paths, wd, out, ahead, func(float64) {})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n < 4.5 {
			t.Errorf("%s: montage of %.3f s, want 4.53", name, n)
		}
		decodesStrictly(t, out)
		if got := audioMD5(t, out); got != want {
			t.Errorf("%s: montage audio %s, want the single encode's %s", name, got, want)
		}
		return out
	}
	fileSum := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	alone := fileSum(concat("alone", nil))

	// The spool: segments committed out of order; the audio is fed as far
	// as they run on without a gap, and the concat finishes it.
	sp, err := newSpool(ctx, filepath.Join(dir, "spool"), tools, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	commit := func(job string, i int, sha string, token ...uint64) {
		t.Helper()
		staged := filepath.Join(dir, fmt.Sprintf("out-%s-%d.mp4", job, i))
		b, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(staged, b, 0o640); err != nil {
			t.Fatal(err)
		}
		l := &montagev1.Lease{TaskId: fmt.Sprintf("%s-r%d", job, i), JobId: job, Type: montagev1.TaskType_TASK_TYPE_RENDER,
			SegmentIndex: int32(i), SegmentCount: 3, Profile: prof}
		if len(token) > 0 {
			l.Token = token[0]
		}
		if !sp.stage(l, staged, "128k", &montagev1.TaskResult{Sha256: sha, Size: int64(len(b)), DurationSeconds: segs[i].GetDurationSeconds()}) {
			t.Fatalf("segment %d of %s not staged", i, job)
		}
		sp.keep(l.GetTaskId())
	}
	fed := func(job string) int {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if j := sp.jobs[job]; j != nil {
			return j.next
		}
		return -1
	}
	commit("a", 1, segs[1].GetSha256())
	if n := fed("a"); n != 0 {
		t.Fatalf("segment 1 alone fed %d segments; nothing can be encoded before segment 0", n)
	}
	commit("a", 0, segs[0].GetSha256())
	waitFor(t, func() bool { return fed("a") == 2 })
	j := sp.take("a")
	if j == nil || j.audio == nil || len(j.audio.fed) != 2 || !j.audio.continues(segs, "128k") || j.audio.continues(segs, "192k") {
		t.Fatalf("taken: %+v", j)
	}
	for i := range 2 {
		if p := j.segment(i, segs[i]); p == "" || !strings.HasPrefix(p, sp.dir) {
			t.Errorf("segment %d not kept: %q", i, p)
		}
	}
	if p := j.segment(2, segs[2]); p != "" {
		t.Errorf("segment 2 was never kept, yet the spool offers %s", p)
	}
	ahead := j.audio
	j.audio = nil
	// Not only the audio: the whole montage is the same file, so a rerun
	// from the cache (nothing kept) reproduces it byte for byte.
	if sum := fileSum(concat("ahead", ahead)); sum != alone {
		t.Errorf("the montage joined with the audio encoded ahead differs from the one encoded by the concat: %s vs %s", sum, alone)
	}
	j.discard()
	if _, err := os.Stat(j.dir); !os.IsNotExist(err) {
		t.Errorf("the concat's kept segments are still on disk: %v", err)
	}
	if sp.held() != 0 {
		t.Errorf("the spool counts %d bytes after its only montage was taken", sp.held())
	}

	// A kept encode of other segments (another attempt's render, say) is
	// not carried on: the concat encodes the audio itself.
	commit("b", 0, strings.Repeat("0", 64))
	waitFor(t, func() bool { return fed("b") == 1 })
	j = sp.take("b")
	if j.segment(0, segs[0]) != "" {
		t.Error("a kept segment whose SHA-256 differs from the committed one is offered")
	}
	if j.audio.continues(segs, "128k") {
		t.Fatal("an encode of another segment 0 claims to continue the montage")
	}
	ahead = j.audio
	j.audio = nil
	concat("mismatch", ahead)
	j.discard()

	// A segment rendered again (a later grant) replaces the one kept.
	commit("c", 1, segs[1].GetSha256(), 7)
	commit("c", 1, segs[1].GetSha256(), 8)
	j = sp.take("c")
	p := j.segment(1, segs[1])
	if _, err := os.Stat(filepath.Join(j.dir, "seg-000001-7.mp4")); !os.IsNotExist(err) || !strings.HasSuffix(p, "seg-000001-8.mp4") {
		t.Errorf("after a second grant's render the spool offers %q (the first's file: %v)", p, err)
	}
	j.discard()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The spool says which montages it keeps segments of, staged or kept, so
// the coordinator can leave their concats to this agent; and which
// renders wait for their commit, so the completion can say it keeps them.
func TestSpoolSaysWhatItKeeps(t *testing.T) {
	dir := t.TempDir()
	sp, err := newSpool(context.Background(), filepath.Join(dir, "spool"), media.Tools{}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	stage := func(job string, i int) string {
		t.Helper()
		out := filepath.Join(dir, fmt.Sprintf("%s-%d.mp4", job, i))
		if err := os.WriteFile(out, []byte("segment"), 0o640); err != nil {
			t.Fatal(err)
		}
		// Never segment 0: nothing is encoded, so no ffmpeg is needed.
		l := &montagev1.Lease{TaskId: fmt.Sprintf("%s-r%d", job, i), JobId: job, Type: montagev1.TaskType_TASK_TYPE_RENDER, SegmentIndex: int32(i), SegmentCount: 3}
		if !sp.stage(l, out, "160k", &montagev1.TaskResult{Sha256: strings.Repeat("a", 64), Size: 7, DurationSeconds: 1}) {
			t.Fatalf("%s not staged", l.GetTaskId())
		}
		return l.GetTaskId()
	}
	if got := sp.keptJobs(); len(got) != 0 {
		t.Fatalf("an empty spool keeps %v", got)
	}
	x1 := stage("x", 1)
	y2 := stage("y", 2)
	if !sp.isStaged(x1) || !sp.isStaged(y2) || sp.isStaged("x-r2") {
		t.Errorf("staged: x1 %v y2 %v x-r2 %v", sp.isStaged(x1), sp.isStaged(y2), sp.isStaged("x-r2"))
	}
	if got := sp.keptJobs(); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("keptJobs with x and y staged = %v", got)
	}
	sp.keep(x1)
	sp.unstage(y2) // the coordinator did not commit it
	if got := sp.keptJobs(); !slices.Equal(got, []string{"x"}) || sp.isStaged(x1) {
		t.Errorf("after x kept and y dropped: keptJobs = %v, x1 staged %v", got, sp.isStaged(x1))
	}
	sp.take("x").discard()
	if got := sp.keptJobs(); len(got) != 0 {
		t.Errorf("after the concat took x the spool keeps %v", got)
	}
}
