package worker

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/internal/testmedia"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// copyCutSources serves stream-like sources for the copying cuts: 60 fps
// H.264 High with B-frames and 2-s GOPs (closed, and one open), and one at
// another size.
func copyCutSources(t *testing.T) (tools media.Tools, url string) {
	t.Helper()
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srcs := []testmedia.Source{
		{Name: "closed.mp4", Width: 640, Height: 360, FPS: "60", SampleRate: 48000, Channels: 2, Seconds: 20, Streamlike: true, HLS: true},
		{Name: "open.mp4", Width: 640, Height: 360, FPS: "60", SampleRate: 48000, Channels: 2, Seconds: 12, Streamlike: true, OpenGOP: true},
		{Name: "big.mp4", Width: 854, Height: 480, FPS: "30", SampleRate: 44100, Channels: 1, Seconds: 8},
		{Name: "longgop.mp4", Width: 640, Height: 360, FPS: "60", SampleRate: 48000, Channels: 2, Seconds: 12, Streamlike: true, GOPSeconds: 5},
	}
	if err := testmedia.GenerateAll(ctx, dir, srcs); err != nil {
		t.Fatal(err)
	}
	srv, err := testmedia.Serve(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return tools, srv.URL
}

// frameHashes decodes a file's video from `from` seconds (-1: the whole
// file) and returns one MD5 per frame.
func frameHashes(t *testing.T, path string, from float64, frames int) []string {
	t.Helper()
	args := []string{"-v", "error"}
	if from >= 0 {
		args = append(args, "-ss", strconv.FormatFloat(from, 'f', 6, 64))
	}
	args = append(args, "-i", path, "-map", "0:v:0")
	if frames > 0 {
		args = append(args, "-frames:v", strconv.Itoa(frames))
	}
	out, err := exec.Command("ffmpeg", append(args, "-f", "framemd5", "-")...).Output()
	if err != nil {
		t.Fatalf("framemd5 of %s: %v", path, err)
	}
	var sums []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ",")
		sums = append(sums, strings.TrimSpace(f[len(f)-1]))
	}
	return sums
}

// framePSNR compares the frame of a at aAt seconds with the frame of b at
// bAt seconds.
func framePSNR(t *testing.T, a string, aAt float64, b string, bAt float64) float64 {
	t.Helper()
	ts := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-ss", ts(aAt), "-i", a, "-ss", ts(bAt), "-i", b,
		"-lavfi", "[0:v][1:v]psnr", "-frames:v", "1", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("psnr: %v: %s", err, out)
	}
	s := string(out)
	i := strings.LastIndex(s, "average:")
	if i < 0 {
		t.Fatalf("psnr printed no average: %s", s)
	}
	f := strings.Fields(s[i+len("average:"):])
	if f[0] == "inf" {
		return 100
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("psnr %q: %v", f[0], err)
	}
	return v
}

// decodesStrictly decodes the whole file and fails on any decoding error.
func decodesStrictly(t *testing.T, path string) {
	t.Helper()
	if err := testmedia.DecodeErrors(context.Background(), path); err != nil {
		t.Errorf("%s does not decode cleanly: %v", filepath.Base(path), err)
	}
}

func cutProfile(cut string) media.Profile {
	return media.Profile{Width: 640, Height: 360, FPS: 60, Quality: 20, AudioBitrate: "128k", Encoder: "libx264", Fade: 0.25, Cut: cut}
}

// A smart cut copies the source's whole GOPs inside the highlight bit for
// bit, re-encodes only the edges, lasts exactly the frames asked for, and
// decodes without one error; an open-GOP source or one of another size is
// re-encoded whole and says why.
func TestSmartCut(t *testing.T) {
	tools, url := copyCutSources(t)
	r := Renderer{Tools: tools}
	ctx := context.Background()
	render := func(src string, at, dur float64, cut string) (string, float64, *montagev1.SourceFacts) {
		t.Helper()
		dir := t.TempDir()
		out := filepath.Join(dir, "seg.mp4")
		in := &montagev1.RenderInput{SourceUrl: url + "/" + src, StartSeconds: at, DurationSeconds: dur, FadeIn: true, FadeOut: true}
		n, facts, err := r.Render(ctx, in, cutProfile(cut), dir, out, func(float64) {})
		if err != nil {
			t.Fatalf("%s cut of %s: %v", cut, src, err)
		}
		decodesStrictly(t, out)
		return out, n, facts
	}

	out, n, facts := render("closed.mp4", 3.3, 10, "smart")
	if facts.GetCut() != media.CutSmart || facts.GetCutNote() != "" {
		t.Fatalf("closed GOPs: cut %q (%s), want smart", facts.GetCut(), facts.GetCutNote())
	}
	if p := facts.GetVideoParams(); !strings.Contains(p, "profile=High ") || !strings.Contains(p, "reorder=2") {
		t.Fatalf("the source is not what streaming encoders make (High, B-frames reordered): %s", p)
	}
	// Keyframes every 2 s: the GOPs from 4 to 12 s are copied.
	if facts.GetCopiedSeconds() != 8 || facts.GetCutStartSeconds() != 3.3 || n != 10 {
		t.Errorf("copied %.3f s from %.3f, lasting %.3f; want 8 s of a cut from 3.3 lasting 10", facts.GetCopiedSeconds(), facts.GetCutStartSeconds(), n)
	}
	got := frameHashes(t, out, -1, 0)
	if len(got) != 600 {
		t.Fatalf("%d frames, want 600", len(got))
	}
	want := frameHashes(t, url+"/closed.mp4", 4, 480)
	for i, h := range want {
		if got[42+i] != h {
			t.Fatalf("frame %d of the copied GOPs differs from the source's frame at %.3f s", 42+i, 4+float64(i)/60)
		}
	}
	// The edges are re-encoded, so they are not the source's bytes, but
	// they are its pictures: the frame after the head is the keyframe's,
	// and each edge's frames past the fades are the source's at those times
	// (any other frame of the pattern scores far lower).
	if got[41] == want[0] || got[42] != want[0] {
		t.Errorf("the head does not end where the copy begins")
	}
	for _, f := range []struct {
		frame int
		src   float64
	}{{20, 3.3 + 20.0/60}, {41, 4 - 1.0/60}, {522, 12}, {579, 13.3 - 21.0/60}} {
		if p := framePSNR(t, out, float64(f.frame)/60, url+"/closed.mp4", f.src); p < 30 {
			t.Errorf("frame %d of the cut is not the source's frame at %.4f s (PSNR %.1f dB)", f.frame, f.src, p)
		}
	}

	// The same from the HLS copy of the source (2-s segments).
	out, _, facts = render("closed.m3u8", 3.3, 10, "smart")
	if facts.GetCut() != media.CutSmart || facts.GetCopiedSeconds() != 8 {
		t.Errorf("HLS: cut %q copying %.3f s (%s), want smart copying 8 s", facts.GetCut(), facts.GetCopiedSeconds(), facts.GetCutNote())
	}
	// HLS times count from the playlist's first packet, here its audio's,
	// which starts a frame or two before the video: the GOPs sit where that
	// puts them, within two frames of the MP4's.
	hls := frameHashes(t, out, -1, 0)
	at := slices.Index(hls, want[0])
	if len(hls) != 600 || at < 40 || at > 44 || strings.Join(hls[at:at+480], ",") != strings.Join(want, ",") {
		t.Errorf("HLS: %d frames, the source's 4-s keyframe at frame %d; the copied GOPs are not the source's", len(hls), at)
	}

	_, _, facts = render("open.mp4", 3.3, 6, "smart")
	if facts.GetCut() != media.CutEncoded || !strings.Contains(facts.GetCutNote(), "open GOP") {
		t.Errorf("open GOPs: cut %q note %q, want encode because of open GOPs", facts.GetCut(), facts.GetCutNote())
	}
	_, n, facts = render("big.mp4", 1.5, 4, "smart")
	if facts.GetCut() != media.CutEncoded || !strings.Contains(facts.GetCutNote(), "854x480") || n != 4 {
		t.Errorf("another size: cut %q note %q length %.3f, want encode naming 854x480, 4 s", facts.GetCut(), facts.GetCutNote(), n)
	}
}

// A keyframe cut copies from the keyframe at or before the start to the one
// at or after the end, every frame the source's own; segments of copied
// and re-encoded video from different sources join into a montage that
// decodes without one error.
func TestKeyframeCutAndJoin(t *testing.T) {
	tools, url := copyCutSources(t)
	r := Renderer{Tools: tools}
	ctx := context.Background()
	dir := t.TempDir()
	seg := func(name, src string, at, dur float64, cut string) (string, *montagev1.ConcatSegment) {
		t.Helper()
		out := filepath.Join(dir, name+".mp4")
		wd := filepath.Join(dir, name)
		if err := os.MkdirAll(wd, 0o750); err != nil {
			t.Fatal(err)
		}
		prof := cutProfile(cut)
		if cut == "keyframe" {
			prof.Fade = 0
		}
		in := &montagev1.RenderInput{SourceUrl: url + "/" + src, StartSeconds: at, DurationSeconds: dur, FadeIn: true, FadeOut: true}
		n, facts, err := r.Render(ctx, in, prof, wd, out, func(float64) {})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out, &montagev1.ConcatSegment{Title: name, DurationSeconds: n, HighlightIndex: 0, Role: "highlight", Source: facts,
			SourceUrl: in.GetSourceUrl(), SourceStartSeconds: at}
	}
	out, s := seg("kf", "closed.mp4", 3.3, 10, "keyframe")
	if f := s.GetSource(); f.GetCut() != media.CutCopied || f.GetCutStartSeconds() != 2 || math.Abs(s.GetDurationSeconds()-12) > 1e-6 || math.Abs(f.GetCopiedSeconds()-12) > 1e-6 {
		t.Fatalf("keyframe cut of 3.3+10 s: %s from %.3f lasting %.3f (%.3f copied); want copy from 2 lasting 12",
			f.GetCut(), f.GetCutStartSeconds(), s.GetDurationSeconds(), f.GetCopiedSeconds())
	}
	decodesStrictly(t, out)
	got, want := frameHashes(t, out, -1, 0), frameHashes(t, url+"/closed.mp4", 2, 720)
	if len(got) != 720 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the keyframe cut's %d frames are not the source's 720 from 2 s", len(got))
	}

	// Keyframes every 5 s (as some platforms' VODs have): the cut snaps to
	// them.
	out, s = seg("kf-long", "longgop.mp4", 9, 1, "keyframe")
	if f := s.GetSource(); f.GetCut() != media.CutCopied || f.GetCutStartSeconds() != 5 || math.Abs(s.GetDurationSeconds()-5) > 1e-6 {
		t.Errorf("keyframe cut of 9+1 s with 5-s GOPs: %s from %.3f lasting %.3f; want a copy from 5 lasting 5",
			f.GetCut(), f.GetCutStartSeconds(), s.GetDurationSeconds())
	}
	if got, want := frameHashes(t, out, -1, 0), frameHashes(t, url+"/longgop.mp4", 5, 300); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the long-GOP keyframe cut's %d frames are not the source's 300 from 5 s", len(got))
	}

	// From the HLS copy of the source: the same GOPs, frame for frame.
	out, s = seg("kf-hls", "closed.m3u8", 3.3, 10, "keyframe")
	if f := s.GetSource(); f.GetCut() != media.CutCopied || math.Abs(f.GetCutStartSeconds()-2) > 0.05 || math.Abs(s.GetDurationSeconds()-12) > 1e-6 {
		t.Errorf("HLS keyframe cut: %s from %.3f lasting %.3f; want a copy from about 2 lasting 12", f.GetCut(), f.GetCutStartSeconds(), s.GetDurationSeconds())
	}
	decodesStrictly(t, out)
	if got := frameHashes(t, out, -1, 0); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the HLS keyframe cut's %d frames are not the source's 720 from 2 s", len(got))
	}

	var paths []string
	var segs []*montagev1.ConcatSegment
	for _, c := range []struct {
		name, src string
		at, dur   float64
	}{{"smart", "closed.mp4", 1.1, 6}, {"other-size", "big.mp4", 2, 3}, {"open", "open.mp4", 5.05, 4}, {"smart-again", "closed.mp4", 12.5, 5}} {
		p, s := seg(c.name, c.src, c.at, c.dur, "smart")
		s.HighlightIndex = int32(len(segs))
		paths, segs = append(paths, p), append(segs, s)
	}
	prof := &montagev1.RenderProfile{Resolution: "640x360", Fps: 60, VideoCodec: "h264", Quality: 20, AudioBitrate: "128k",
		Loudness: "off", Fade: "0.25", Hwaccel: "none", Encoder: "libx264", Cut: "smart"}
	montage := filepath.Join(dir, "montage.mp4")
	n, _, err := r.Concat(ctx, "j", prof, segs, paths, dir, montage, func(float64) {})
	if err != nil {
		t.Fatal(err)
	}
	decodesStrictly(t, montage)
	if frames := len(frameHashes(t, montage, -1, 0)); frames != 60*(6+3+4+5) || n < 17.9 {
		t.Errorf("montage of 18 s: %d frames, %.3f s; want %d frames", frames, n, 60*18)
	}
}
