package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// BenchmarkLeaseLatency measures LeaseTask round trips over HTTP on a
// 3-node loopback cluster while work is queued: the raft commit of the
// grant plus presigning, asked of the leader directly and of a follower
// (forwarded). It reports the 50th and 99th percentiles.
func BenchmarkLeaseLatency(b *testing.B) {
	m := startMulti(b)
	leader := m.c.Index(m.c.Leader(b, 10*time.Second))
	for _, via := range []struct {
		name string
		idx  int
	}{{"leader", leader}, {"follower", (leader + 1) % 3}} {
		b.Run(via.name, func(b *testing.B) {
			ctx := context.Background()
			jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, m.urls[via.idx])
			agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, m.urls[via.idx])
			agent := "bench-" + via.name
			queueRenders(b, jobs, agents, agent)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: 1, WaitSeconds: 1}))
				lat = append(lat, time.Since(t0))
				if err != nil || len(r.Msg.GetLeases()) != 1 {
					b.Fatalf("lease %d: %v", i, err)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
		})
	}
}

// BenchmarkCompleteLatency measures CompleteTask round trips on the leader
// of a 3-node loopback cluster: fence check, verification of the uploaded
// segment (a 256 KiB object on the local store), the raft commit and the
// copy into the segment cache. The lease and upload happen outside the
// timed call.
func BenchmarkCompleteLatency(b *testing.B) {
	m := startMulti(b)
	url := m.urls[m.c.Index(m.c.Leader(b, 10*time.Second))]
	ctx := context.Background()
	jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, url)
	agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, url)
	const agent = "bench-complete"
	queueRenders(b, jobs, agents, agent)
	body := bytes.Repeat([]byte("segment "), 32<<10)
	sum := sha256.Sum256(body)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: 1, WaitSeconds: 1}))
		if err != nil || len(r.Msg.GetLeases()) != 1 {
			b.Fatalf("lease %d: %v", i, err)
		}
		l := r.Msg.GetLeases()[0]
		req, _ := http.NewRequest(http.MethodPut, l.GetOutputPutUrl(), bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			b.Fatalf("put: %v %v", err, resp)
		}
		resp.Body.Close()
		b.StartTimer()
		t0 := time.Now()
		_, err = agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{
			AgentId: agent, TaskId: l.GetTaskId(), Token: l.GetToken(),
			Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5,
				// As a real agent reports it: the completion then also copies
				// the segment into the cache (and checks the copy).
				Source: &montagev1.SourceFacts{Identity: `etag="bench"; size=1000000`}},
		}))
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("complete %d: %v", i, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
}

// queueRenders registers agent and queues b.N renders for it, in jobs of
// up to 500 highlights.
func queueRenders(b *testing.B, jobs montagev1connect.JobServiceClient, agents montagev1connect.AgentServiceClient, agent string) {
	b.Helper()
	ctx := context.Background()
	if _, err := agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: agent, Slots: 1, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		b.Fatal(err)
	}
	for left := b.N; left > 0; left -= 500 {
		s := &montagev1.JobSpec{}
		for i := 0; i < min(left, 500); i++ {
			s.Highlights = append(s.Highlights, &montagev1.Highlight{Url: "http://src/v.mp4", At: fmt.Sprint(i), Duration: "5"})
		}
		if _, err := jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s})); err != nil {
			b.Fatal(err)
		}
	}
}
