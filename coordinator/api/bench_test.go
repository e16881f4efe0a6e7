package api

import (
	"context"
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
