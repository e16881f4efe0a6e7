package media

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stream-montages/montage/internal/testmedia"
)

// Subtitles burn into the picture through the filtergraph from a file whose
// path holds every character the graph and option parsers treat specially:
// the words show at a cue's time and nowhere else.
func TestBurnSubtitlesFromAnOddPath(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is required: apt-get install -y ffmpeg")
	}
	ctx := context.Background()
	src := t.TempDir()
	if err := testmedia.Generate(ctx, src, testmedia.Source{Name: "flat.mp4", Width: 640, Height: 360, FPS: "25",
		SampleRate: 48000, Channels: 2, Seconds: 4, Flat: true}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(src)))
	defer srv.Close()
	odd := filepath.Join(t.TempDir(), `it's: a, [cut]; x\y =z`)
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	subs := filepath.Join(odd, "cues'.srt")
	if err := os.WriteFile(subs, []byte("1\n00:00:00,500 --> 00:00:01,800\nWELL PLAYED\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	r := Render{Video: Input{URL: srv.URL + "/flat.mp4"}, Start: 1, Duration: 3, HasAudio: true,
		Profile: Profile{Width: 640, Height: 360, FPS: 25, Quality: 23, AudioBitrate: "96k"}, SubtitlesFile: subs, Output: out}
	tools := Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	if _, err := tools.RunFFmpeg(ctx, RenderArgs(r), r.Duration, nil); err != nil {
		t.Fatal(err)
	}
	during, err := testmedia.BrightPixels(ctx, out, 1.0)
	if err != nil {
		t.Fatal(err)
	}
	after, err := testmedia.BrightPixels(ctx, out, 2.5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bright pixels: %d during the cue, %d after", during, after)
	if during < 50 || after != 0 {
		t.Errorf("bright pixels in the bottom third: %d during the cue (want ≥ 50), %d after it (want 0)", during, after)
	}
}
