package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// farm is a state of n finished, compacted jobs and live ones of six tasks,
// with records the size a real farm's have (a spec of five highlights is
// about 800 bytes).
func farm(n, live int, compact bool) *State {
	l := &historyLog{s: New()}
	spec := bytes.Repeat([]byte("https://vods.example.com/streamer/2026-11-01/vod.mp4 Clutch moment "), 12)
	for i := 0; i < n+live; i++ {
		id := fmt.Sprintf("j%011x", i)
		c := job(id, 5, 3)
		c.Job.Spec, c.Job.Profile = spec, []byte("profile 1280x720 30 fps libx264 crf 23")
		c.Job.Sources = []string{"https://vods.example.com/a.mp4", "https://vods.example.com/b.mp4"}
		c.IdempotencyKey = "key-" + id
		l.apply(&Command{Submit: c})
		if i >= n {
			continue
		}
		for _, t := range c.Tasks {
			g := l.apply(&Command{Grant: &GrantCmd{TaskID: t.ID, AgentID: "a"}})
			if g.Err != nil {
				l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "a", Slots: 8}}})
				g = l.apply(&Command{Grant: &GrantCmd{TaskID: t.ID, AgentID: "a"}})
			}
			l.apply(&Command{Complete: &CompleteCmd{TaskID: t.ID, AgentID: "a", Token: g.Token,
				Result: Result{Key: "jobs/" + id + "/segments/" + t.ID + ".mp4", Size: 50 << 20, SHA256: fmt.Sprintf("%064x", i), Duration: 30}}})
		}
		l.apply(&Command{Finalize: &FinalizeCmd{JobID: id, Outputs: map[string]string{"montage": "jobs/" + id + "/montage.mp4",
			"chapters": "jobs/" + id + "/chapters.txt", "thumbnail": "jobs/" + id + "/thumbnail.jpg", "manifest": "jobs/" + id + "/manifest.json"}}})
		if compact {
			l.apply(&Command{PurgeSegments: &JobCmd{JobID: id}})
		}
	}
	return l.s
}

// BenchmarkSnapshot100k: a week of a busy farm (100,000 finished jobs and
// 1,000 queued ones). It reports the time the view holds up Apply, the
// time to write it and its size, and the time to restore it.
func BenchmarkSnapshot100k(b *testing.B) {
	s := farm(100000, 1000, true)
	if s.Unfinished() != 1000 || len(s.Tasks) != 6000 || s.Jobs["j00000000000"].State != montagev1.JobState_JOB_STATE_SUCCEEDED {
		b.Fatalf("farm: %d unfinished, %d tasks", s.Unfinished(), len(s.Tasks))
	}
	var freeze, write, restore time.Duration
	var size int64
	var buf bytes.Buffer
	for i := 0; i < b.N; i++ {
		f := NewFrozen(s.Sizes())
		t0 := time.Now()
		s.FreezeInto(f)
		freeze += time.Since(t0)
		buf.Reset()
		t0 = time.Now()
		n, err := f.WriteTo(&buf)
		write += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		size = n
		t0 = time.Now()
		if _, err := Restore(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
		restore += time.Since(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(freeze.Microseconds())/n/1000, "ms-freeze")
	b.ReportMetric(write.Seconds()/n, "s-write")
	b.ReportMetric(restore.Seconds()/n, "s-restore")
	b.ReportMetric(float64(size)/1e6, "MB")
}

// BenchmarkSnapshotV1JSON is the same farm as the format before it:
// finished jobs not compacted (six tasks each) and the whole state one JSON
// document, encoded while Apply waits, then decoded.
func BenchmarkSnapshotV1JSON(b *testing.B) {
	s := farm(100000, 1000, false)
	v := v1State{Jobs: s.Jobs, Tasks: s.Tasks, Agents: s.Agents, Idempotency: s.Idempotency, Cache: s.Cache, CacheLatest: s.CacheLatest}
	var encode, decode time.Duration
	var size int
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		buf, err := json.Marshal(v)
		encode += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		size = len(buf)
		t0 = time.Now()
		if _, err := Restore(bytes.NewReader(buf)); err != nil {
			b.Fatal(err)
		}
		decode += time.Since(t0)
	}
	n := float64(b.N)
	b.ReportMetric(encode.Seconds()/n, "s-encode-blocking")
	b.ReportMetric(decode.Seconds()/n, "s-restore")
	b.ReportMetric(float64(size)/1e6, "MB")
}
