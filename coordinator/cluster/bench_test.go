package cluster_test

import (
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/cluster/clustertest"
	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// quiet keeps benchmark output readable.
func quiet() { slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil))) }

// BenchmarkGrantComplete measures task grant+complete pairs committed
// through a 3-node loopback raft cluster, with 64 proposers at once (raft
// batches concurrent proposals into one append and one fsync).
func BenchmarkGrantComplete(b *testing.B) {
	quiet()
	c := clustertest.Start(b, 3, nil, time.Minute)
	leader := c.Leader(b, 10*time.Second)
	apply := func(cmd *fsm.Command) fsm.Response {
		r, err := leader.Apply(cmd)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "a", Slots: 1}}})
	tasks := make([]*fsm.Task, b.N)
	for i := range tasks {
		tasks[i] = &fsm.Task{ID: fmt.Sprintf("t%d", i), Type: montagev1.TaskType_TASK_TYPE_RENDER, MaxAttempts: 1}
	}
	// Submit in jobs of 500 tasks, outside the timing.
	for i := 0; i < len(tasks); i += 500 {
		apply(&fsm.Command{Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: fmt.Sprintf("j%d", i)}, Tasks: tasks[i:min(i+500, len(tasks))]}})
	}
	var next atomic.Int64
	b.SetParallelism(32) // 32 goroutines per GOMAXPROCS
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("t%d", next.Add(1)-1)
			g := apply(&fsm.Command{Grant: &fsm.GrantCmd{TaskID: id, AgentID: "a"}})
			if g.Err != nil {
				b.Fatal(g.Err)
			}
			if r := apply(&fsm.Command{Complete: &fsm.CompleteCmd{TaskID: id, AgentID: "a", Token: g.Token}}); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

// BenchmarkFailover measures, with default raft and gossip timings, the time
// from stopping the leader to the first write accepted by a new leader.
func BenchmarkFailover(b *testing.B) {
	quiet()
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := startDefault(b)
		leader := c.Leader(b, 30*time.Second)
		b.StartTimer()
		t0 := time.Now()
		c.Stop(c.Index(leader))
		for {
			var done bool
			for _, nd := range c.Nodes {
				if nd == nil || !nd.IsLeader() || !nd.Ready() {
					continue
				}
				if r, err := nd.Apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "probe"}}}); err == nil && r.Err == nil {
					done = true
				}
			}
			if done {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		for j := range c.Nodes {
			if c.Nodes[j] != nil {
				c.Stop(j)
			}
		}
	}
	sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
	b.ReportMetric(took[len(took)/2].Seconds(), "s-median-failover")
}

// startDefault is clustertest.Start with production timings.
func startDefault(b *testing.B) *clustertest.Cluster {
	c := &clustertest.Cluster{}
	g0 := clustertest.FreeAddr(b)
	for i := 0; i < 3; i++ {
		cfg := cluster.Config{DataDir: b.TempDir(), RaftAddr: clustertest.FreeAddr(b), Gossip: clustertest.FreeAddr(b), BootstrapExpect: 3}
		if i == 0 {
			cfg.Gossip = g0
		} else {
			cfg.Join = []string{g0}
		}
		n, err := cluster.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
		c.Cfgs = append(c.Cfgs, cfg)
	}
	return c
}
