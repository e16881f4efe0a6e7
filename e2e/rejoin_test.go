package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A restarted agent registers from the encoder proof it kept, before its
// test encodes run again in the background; the first start proves them.
func TestAgentRejoinsFromItsKeptProof(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	dir := t.TempDir()
	first := startAgent(t, c.url, dir)
	waitFor(t, 60*time.Second, "the first start's proof and registration", func() bool {
		out := first.out.String()
		return strings.Contains(out, "encoders proven by test encodes") && strings.Contains(out, `msg=registered`)
	})
	first.kill(syscall.SIGTERM)
	<-first.done
	again := startAgent(t, c.url, dir)
	waitFor(t, 60*time.Second, "the background proof after the restart", func() bool {
		return strings.Contains(again.out.String(), "encoder proof confirmed")
	})
	out := again.out.String()
	kept, reg, proved := strings.Index(out, "encoders from the proof kept"), strings.Index(out, "msg=registered"), strings.Index(out, "encoder proof confirmed")
	if kept < 0 || reg < 0 || !(kept < reg && reg < proved) || strings.Contains(out, "encoders proven by test encodes") {
		t.Fatalf("the restart did not register from its kept proof before proving again:\n%s", out)
	}
}

// From an agent's (re)start to its first lease, with the encoder proof it
// kept and without one (deleted before the start). Aim: ≤ 2 s kept.
func BenchmarkAgentRestartToLease(b *testing.B) {
	c := startCoordinator(b, b.TempDir(), freePort(b))
	dir := b.TempDir()
	warm := startAgent(b, c.url, dir)
	waitFor(b, 60*time.Second, "the first proof", func() bool { return strings.Contains(warm.out.String(), "msg=registered") })
	warm.kill(syscall.SIGTERM)
	<-warm.done
	measure := func(keep bool) time.Duration {
		if !keep {
			_ = os.Remove(filepath.Join(dir, "encoder-proof.json"))
		}
		r := ctl(b, c.url, "submit", "-q", writeSpec(b, "profile: {resolution: 320x180, fps: 25}\nhighlights:\n  - {url: "+mediaURL+"/a.mp4, at: 1, duration: 1}\n"))
		if r.code != 0 {
			b.Fatal(r.stderr)
		}
		id := strings.TrimSpace(r.stdout)
		t0 := time.Now()
		a := startAgent(b, c.url, dir)
		for {
			j, err := tryGetJob(c.url, id)
			if err == nil && slices.ContainsFunc(j.GetTasks(), func(t *montagev1.Task) bool { return t.GetAgentId() != "" }) {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatal("no lease in a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
		d := time.Since(t0)
		waitJobDone(b, c.url, id, 2*time.Minute)
		a.kill(syscall.SIGTERM)
		<-a.done
		return d
	}
	var kept, cold time.Duration
	for i := 0; i < b.N; i++ {
		kept += measure(true)
		cold += measure(false)
	}
	b.ReportMetric(kept.Seconds()/float64(b.N), "kept-proof-s")
	b.ReportMetric(cold.Seconds()/float64(b.N), "no-proof-s")
}
