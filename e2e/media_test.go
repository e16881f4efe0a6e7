package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/testmedia"
)

// syncSources are sources with sync markers (a flash and a beep at every
// whole second) in the formats streamers bring.
var syncSources = []testmedia.Source{
	{Name: "s1080.mp4", Width: 1920, Height: 1080, FPS: "60000/1001", SampleRate: 48000, Channels: 2, Seconds: 12, Sync: true, BeepLevel: 0.5},
	{Name: "s720.mp4", Width: 1280, Height: 720, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: 34, Sync: true, BeepLevel: 0.1},
	{Name: "sportrait.mp4", Width: 540, Height: 960, FPS: "25", SampleRate: 44100, Channels: 1, Seconds: 10, Sync: true, BeepLevel: 0.3},
	{Name: "ssilent.mp4", Width: 640, Height: 360, FPS: "30", Seconds: 10, Sync: true},
	{Name: "shevc.mp4", Width: 640, Height: 360, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: 10, Sync: true, Codec: "hevc", BeepLevel: 0.5},
	{Name: "shls.mp4", Width: 640, Height: 360, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: 14, Sync: true, HLS: true, BeepLevel: 0.25},
}

type syncClip struct {
	path       string
	at, dur    float64
	title      string
	silent     bool
	wantChunks int
}

var syncClips = []syncClip{
	{path: "s1080.mp4", at: 2.3, dur: 6, title: "1080p 59.94"},
	{path: "s720.mp4", at: 4.6, dur: 25, title: "720p30 in chunks", wantChunks: 3},
	{path: "sportrait.mp4", at: 1.45, dur: 5, title: "Portrait 25 fps mono"},
	{path: "ssilent.mp4", at: 3.7, dur: 4, title: "No audio", silent: true},
	{path: "shevc.mp4", at: 2.2, dur: 5, title: "HEVC"},
	{path: "shls.m3u8", at: 5.1, dur: 6, title: "HLS"},
}

const syncLoudness = -16.0

func syncSpec(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nchunk_seconds: 10\nprofile:\n  resolution: 640x360\n  fps: 30\n  loudness: \"%g\"\n  fade: \"0.25\"\n  title_overlay: true\nhighlights:\n", name, syncLoudness)
	for _, c := range syncClips {
		fmt.Fprintf(&b, "  - url: %s/%s\n    at: %g\n    duration: %g\n    title: %q\n", mediaURL, c.path, c.at, c.dur, c.title)
	}
	return b.String()
}

// The montage of mixed sync-marker sources is frame-exact: every highlight
// lasts what was asked within one frame; every flash and beep sits where the
// cut puts it and within one frame of each other, at the joins and inside
// the chunked highlight; loudness meets the target; chapters sit at the
// joins; the file plays while it downloads; chapters.txt, the thumbnail and
// the manifest are right.
func TestSyncMarkersSurviveTheMontage(t *testing.T) {
	port := freePort(t)
	c := startCoordinator(t, t.TempDir(), port)
	agent := startAgent(t, c.url, t.TempDir())
	res := ctl(t, c.url, "submit", writeSpec(t, syncSpec("sync")), "--wait", "-q")
	if res.code != 0 {
		t.Fatalf("submit --wait exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	dir := t.TempDir()
	if r := ctl(t, c.url, "download", id, "--what", "all", "-o", dir); r.code != 0 {
		t.Fatalf("download exited %d: %s", r.code, r.stderr)
	}
	j := getJob(t, c.url, id)
	checkCommittedOnce(t, j)
	chunks := 0
	for _, task := range j.GetTasks() {
		if task.GetHighlightIndex() == 1 {
			chunks++
		}
	}
	if chunks != 3 {
		t.Errorf("the 25 s highlight ran as %d tasks, want 3 chunks of at most 10 s", chunks)
	}
	out := filepath.Join(dir, "montage.mp4")
	checkSync(t, out)
	// One agent rendered every segment: its concat joined the files it kept
	// and carried on the audio it encoded while they rendered.
	ahead := regexp.MustCompile(`msg="concat: segments gathered".* segments_ahead=(\d+) segments=(\d+) segments_local=(\d+)`).
		FindStringSubmatch(agent.out.String())
	if ahead == nil || ahead[1] == "0" || ahead[2] != ahead[3] {
		t.Errorf("the concat did not use the kept segments and their audio encoded ahead: %q", ahead)
	}

	// chapters.txt follows YouTube's rules.
	txt, err := os.ReadFile(filepath.Join(dir, "chapters.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(txt)), "\n")
	if !strings.HasPrefix(lines[0], "0:00 ") {
		t.Errorf("chapters.txt starts with %q, want 0:00", lines[0])
	}
	prev := -10
	for _, l := range lines {
		var m, s int
		if _, err := fmt.Sscanf(l, "%d:%d", &m, &s); err != nil {
			t.Fatalf("chapters.txt line %q: %v", l, err)
		}
		if at := m*60 + s; at-prev < 10 {
			t.Errorf("chapters.txt: %q is under 10 s after the previous chapter", l)
		} else {
			prev = at
		}
	}
	for _, c := range syncClips {
		mustContain(t, string(txt), c.title, "chapters.txt (short highlights merge, titles stay)")
	}

	// The thumbnail is a JPEG frame of the montage.
	p := ffprobe(t, filepath.Join(dir, "thumbnail.jpg"))
	if len(p.Streams) != 1 || p.Streams[0].CodecName != "mjpeg" || p.Streams[0].Width != 640 || p.Streams[0].Height != 360 {
		t.Errorf("thumbnail = %+v", p.Streams)
	}

	// The manifest tells where each part sits and what its source was.
	var man struct {
		Encoder string `json:"encoder"`
		Parts   []struct {
			HighlightIndex int     `json:"highlight_index"`
			Offset         float64 `json:"offset_seconds"`
			Duration       float64 `json:"duration_seconds"`
			Chunk          int     `json:"chunk"`
			SourceURL      string  `json:"source_url"`
			SourceStart    float64 `json:"source_start_seconds"`
			Source         struct {
				VideoCodec string `json:"video_codec"`
				Width      int    `json:"width"`
				SampleRate int    `json:"sample_rate"`
			} `json:"source"`
		} `json:"parts"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	if man.Encoder != "libx264" || len(man.Parts) != 8 {
		t.Fatalf("manifest: encoder %s, %d parts; want libx264 and 8 (3 chunks + 5):\n%s", man.Encoder, len(man.Parts), b)
	}
	at := 0.0
	for i, part := range man.Parts {
		if math.Abs(part.Offset-at) > 1e-6 {
			t.Errorf("manifest part %d at %.3f, want %.3f (the sum of the parts before)", i, part.Offset, at)
		}
		at += part.Duration
	}
	// The chunks of the long highlight start at source keyframes (one
	// every 2 s in s720.mp4), not at their nominal thirds (12.93, 21.27 s).
	for _, part := range man.Parts[2:4] {
		if part.HighlightIndex != 1 || part.Chunk == 0 || math.Abs(part.SourceStart-2*math.Round(part.SourceStart/2)) > 1e-3 {
			t.Errorf("chunk %d of highlight %d starts at source %.4f s, not at a keyframe", part.Chunk, part.HighlightIndex, part.SourceStart)
		}
	}
	if hevc := man.Parts[6]; hevc.Source.VideoCodec != "hevc" || !strings.HasSuffix(hevc.SourceURL, "shevc.mp4") {
		t.Errorf("manifest part 6 = %+v, want the HEVC source's facts", hevc)
	}
	if p := man.Parts[0]; p.Source.Width != 1920 || p.Source.SampleRate != 48000 {
		t.Errorf("manifest part 0 source = %+v", p.Source)
	}
}

// checkSync asserts everything the sync-marker montage must show.
func checkSync(t *testing.T, out string) {
	t.Helper()
	checkClipsSync(t, out, syncClips, 640, 360, "30/1", 45)
}

// checkClipsSync asserts that a montage of sync-marker clips, w×h at rate,
// has them all where they belong: lengths, chapters, every flash and beep
// (at least minMarkers checked), loudness, moov first, partial playback.
func checkClipsSync(t *testing.T, out string, clips []syncClip, w, h int, rate string, minMarkers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var durations []float64
	for _, c := range clips {
		durations = append(durations, c.dur)
	}
	checkMontage(t, out, durations, w, h, rate)
	chapters, err := testmedia.Chapters(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(chapters) != len(clips) {
		t.Fatalf("%d chapters, want %d", len(chapters), len(clips))
	}
	flashes, beeps, fps, err := testmedia.Markers(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	frame := 1 / fps
	tol := frame + 0.002
	nearest := func(xs []float64, v float64) float64 {
		best := math.Inf(1)
		for _, x := range xs {
			if math.Abs(x-v) < math.Abs(best-v) {
				best = x
			}
		}
		return best
	}
	at := 0.0
	checked := 0
	for i, c := range clips {
		ch := chapters[i]
		// Chapters sit at the joins and each highlight lasts what was asked.
		if math.Abs(ch.Start-at) > tol {
			t.Errorf("chapter %d starts at %.3f, want %.3f (the join)", i, ch.Start, at)
		}
		if got := ch.End - ch.Start; math.Abs(got-c.dur) > tol {
			t.Errorf("highlight %d (%s) lasts %.4f s, want %.4f within one frame", i, c.title, got, c.dur)
		}
		if ch.Title != c.title {
			t.Errorf("chapter %d titled %q, want %q", i, ch.Title, c.title)
		}
		// Each marker of the source second n sits at start + n - at.
		for n := math.Ceil(c.at); n-c.at < c.dur; n++ {
			rel := n - c.at
			if rel < 0.3 || rel > c.dur-0.4 { // fades and the cut edges
				continue
			}
			want := ch.Start + rel
			f := nearest(flashes, want)
			if math.Abs(f-want) > tol {
				t.Errorf("highlight %d (%s): flash of source second %g at %.4f, want %.4f ± %.4f", i, c.title, n, f, want, tol)
			}
			checked++
			if c.silent {
				continue
			}
			b := nearest(beeps, want)
			if math.Abs(b-want) > tol {
				t.Errorf("highlight %d (%s): beep of source second %g at %.4f, want %.4f ± %.4f", i, c.title, n, b, want, tol)
			}
			if math.Abs(f-b) > tol {
				t.Errorf("highlight %d (%s): flash at %.4f and beep at %.4f are %.1f ms apart (a frame is %.1f ms)", i, c.title, f, b, 1000*math.Abs(f-b), 1000*frame)
			}
		}
		if !c.silent {
			l, err := testmedia.Loudness(ctx, out, ch.Start, ch.End-ch.Start)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(l-syncLoudness) > 1 {
				t.Errorf("highlight %d (%s): %.2f LUFS, want %g ± 1 LU", i, c.title, l, syncLoudness)
			}
		}
		at = ch.End
	}
	if checked < minMarkers {
		t.Errorf("only %d markers checked; the test lost its teeth", checked)
	}
	// moov before mdat: players start before the download ends.
	atoms, err := testmedia.TopLevelAtoms(out)
	if err != nil {
		t.Fatal(err)
	}
	moov, mdat := indexOf(atoms, "moov"), indexOf(atoms, "mdat")
	if moov < 0 || mdat < 0 || moov > mdat {
		t.Errorf("top-level boxes %v: moov must come before mdat", atoms)
	}
	// And it does play from a partial download over HTTP: the first 30 %
	// of the file decodes from its start.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	part := fmt.Sprintf("partial-%d.mp4", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(mediaDir, part), b[:len(b)*3/10], 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", mediaURL+"/"+part, "-t", "3", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Errorf("the first 30%% of the montage over HTTP does not play: %v: %s", err, o)
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// HEVC and AV1 montages, crop-to-fill, and an intro and outro: the codec,
// size, lengths and chapters come out as asked.
func TestCodecsFitIntroOutro(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	startAgent(t, c.url, t.TempDir())
	for _, tc := range []struct{ codec, want, fit string }{{"hevc", "hevc", "crop"}, {"av1", "av1", "letterbox"}} {
		t.Run(tc.codec, func(t *testing.T) {
			spec := fmt.Sprintf(`profile: {resolution: 480x480, fps: 25, video_codec: %s, fit: %s}
intro: {url: %[3]s/c.mp4, duration: 2}
outro: {url: %[3]s/b.mp4, at: 3, duration: 2, title: Bye}
highlights:
  - {url: %[3]s/a.mp4, at: 1, duration: 3, title: Middle}
`, tc.codec, tc.fit, mediaURL)
			r := ctl(t, c.url, "submit", "--wait", "-q", writeSpec(t, spec))
			if r.code != 0 {
				t.Fatalf("submit --wait: %s %s", r.stdout, r.stderr)
			}
			id := strings.TrimSpace(r.stdout)
			out := filepath.Join(t.TempDir(), "m.mp4")
			if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
				t.Fatalf("download: %s", r.stderr)
			}
			p := ffprobe(t, out)
			for _, s := range p.Streams {
				if s.CodecType == "video" && (s.CodecName != tc.want || s.Width != 480 || s.Height != 480 || s.RFrameRate != "25/1") {
					t.Errorf("video %+v, want %s 480x480@25", s, tc.want)
				}
			}
			chapters, err := testmedia.Chapters(context.Background(), out)
			if err != nil {
				t.Fatal(err)
			}
			var titles []string
			for i, ch := range chapters {
				titles = append(titles, ch.Title)
				if want := []float64{2, 3, 2}[min(i, 2)]; math.Abs(ch.End-ch.Start-want) > 0.041 {
					t.Errorf("chapter %q lasts %.3f s, want %g", ch.Title, ch.End-ch.Start, want)
				}
			}
			if strings.Join(titles, "|") != "Intro|Middle|Bye" {
				t.Errorf("chapters %v, want Intro, Middle, Bye", titles)
			}
			if got := getJob(t, c.url, id).GetSpec().GetProfile().GetEncoder(); got != map[string]string{"hevc": "libx265", "av1": "libsvtav1"}[tc.codec] {
				t.Errorf("encoder %s", got)
			}
		})
	}
}
