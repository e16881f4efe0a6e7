package transcribe

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/media"
)

// BenchmarkAudioPerMinute reports the audio sent per minute of highlight
// (the transcript's cost; aim ≤ 0.3 MB/min) and the time to extract and
// send one minute, against the local fake service.
func BenchmarkAudioPerMinute(b *testing.B) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		b.Fatal("ffmpeg is required")
	}
	src := filepath.Join(b.TempDir(), "src.mp4")
	// A minute of speech-like audio: a warbling tone with pauses.
	if out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30:duration=60",
		"-f", "lavfi", "-i", "sine=frequency=220:duration=60,tremolo=f=3:d=0.9,volume=0.6",
		"-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "160k", src).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	f := &fakeOpenAI{t: b}
	_, url := serveFor(b, f)
	c := New(Config{Key: testKey, BaseURL: url})
	var bytes int64
	var secs float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := c.Transcribe(context.Background(), media.Tools{FFmpeg: ff}, src, 0, 60, "en", "", b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		bytes, secs = h.AudioBytes, h.AudioSeconds
	}
	b.ReportMetric(float64(bytes)/1e6/(secs/60), "MB/min")
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Second), "s/highlight-minute")
}
