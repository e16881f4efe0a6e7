package worker

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/media"
)

// The thumbnail is the first keyframe from its time on (only that frame is
// decoded), and the exact frame when no keyframe follows.
func TestThumbnailTakesTheNextKeyframe(t *testing.T) {
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	seg := filepath.Join(dir, "seg.mp4")
	// Keyframes at 0 and 2 s; every frame differs (testsrc2 moves).
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p", seg).CombinedOutput(); err != nil {
		t.Fatalf("fixture: %v: %s", err, out)
	}
	exact := func(at float64) []byte {
		t.Helper()
		p := filepath.Join(dir, "exact.jpg")
		if _, err := tools.RunFFmpeg(ctx, media.ThumbnailArgs(seg, at, false, p), 0, nil); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r := Renderer{Tools: tools}
	for _, c := range []struct {
		at, want float64
	}{{1, 2}, {2, 2}, {2.5, 2.5}} {
		out := filepath.Join(dir, "thumb.jpg")
		if err := r.thumbnail(ctx, seg, c.at, out); err != nil {
			t.Fatalf("at %g: %v", c.at, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, exact(c.want)) {
			t.Errorf("thumbnail at %g s is not the frame at %g s", c.at, c.want)
		}
		if c.want != c.at && bytes.Equal(got, exact(c.at)) {
			t.Errorf("thumbnail at %g s is that exact frame, not the next keyframe's", c.at)
		}
	}
}
