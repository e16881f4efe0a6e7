package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func BenchmarkScratchSmart(b *testing.B) {
	raw, err := os.ReadFile("/tmp/v1080.mp4")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mediaDir, "v60.mp4"), raw, 0o644); err != nil {
		b.Fatal(err)
	}
	c := startCoordinator(b, b.TempDir(), freePort(b), "-cache-budget", "-1")
	a := startAgent(b, c.url, b.TempDir())
	for i := 0; i < b.N; i++ {
		spec := fmt.Sprintf("name: sm-%d\nprofile: {resolution: 1920x1080, fps: 60, cut: smart}\nhighlights:\n"+
			"  - {url: %s/v60.mp4, at: 10.5, duration: 20}\n"+
			"  - {url: %s/v60.mp4, at: 33.7, duration: 20}\n", i, mediaURL, mediaURL)
		t0 := time.Now()
		r := ctl(b, c.url, "submit", "--wait", "-q", writeSpec(b, spec))
		if r.code != 0 {
			b.Fatalf("job failed: %s %s", r.stdout, r.stderr)
		}
		b.Logf("smart %d took %.2f s (%s)", i, time.Since(t0).Seconds(), strings.TrimSpace(r.stdout))
	}
	_ = os.WriteFile("/tmp/scratch-coord.log", []byte(c.out.String()), 0o644)
	_ = os.WriteFile("/tmp/scratch-agent.log", []byte(a.out.String()), 0o644)
}
