package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster/clustertest"
	"github.com/stream-montages/montage/internal/clock"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

type multi struct {
	c       *clustertest.Cluster
	urls    []string
	servers []*http.Server
	cancel  []context.CancelFunc
}

// startMulti runs three coordinators in-process, each with its API on a real
// listener behind the forwarding middleware, sharing one object store.
func startMulti(t testing.TB) *multi {
	t.Helper()
	var lns []net.Listener
	var urls []string
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		urls = append(urls, "http://"+ln.Addr().String())
	}
	c := clustertest.Start(t, 3, urls, time.Minute)
	blobMux := http.NewServeMux()
	blobSrv := httptest.NewServer(blobMux)
	t.Cleanup(blobSrv.Close)
	store, err := blob.NewLocal(t.TempDir(), blobSrv.URL, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	blobMux.Handle(blob.PathPrefix, store)
	m := &multi{c: c, urls: urls}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i, nd := range c.Nodes {
		srv := New(nd, store, clock.Real{}, Config{LeaseTTL: 2 * time.Second, LeaseGrace: 4 * time.Second, MaxLeaseWait: 2 * time.Second}, log)
		mux := http.NewServeMux()
		srv.Mount(mux)
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		hs := &http.Server{Handler: srv.Forward(mux), Protocols: p}
		go func() { _ = hs.Serve(lns[i]) }()
		ctx, cancel := context.WithCancel(context.Background())
		go srv.Run(ctx)
		m.servers = append(m.servers, hs)
		m.cancel = append(m.cancel, cancel)
		t.Cleanup(func() { cancel(); _ = hs.Close() })
	}
	return m
}

func (m *multi) kill(i int) {
	m.cancel[i]()
	_ = m.servers[i].Close()
	m.c.Stop(i)
}

// Any coordinator serves any call: writes and streams sent to followers
// reach the leader; after the leader dies a lease it granted survives (grace
// period, renewals through a follower) and completes with its token.
func TestForwardingAndFailover(t *testing.T) {
	m := startMulti(t)
	leader := m.c.Leader(t, 10*time.Second)
	li := m.c.Index(leader)
	follower := (li + 1) % 3
	other := (li + 2) % 3
	ctx := context.Background()
	jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, m.urls[follower])
	agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, m.urls[follower])

	if _, err := agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a1", Slots: 1, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		t.Fatalf("register through a follower: %v", err)
	}
	sub, err := jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{
		Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1", Duration: "2"}}}}))
	if err != nil {
		t.Fatalf("submit through a follower: %v", err)
	}
	id := sub.Msg.GetJob().GetId()
	stream, err := jobs.WatchJob(ctx, connect.NewRequest(&montagev1.WatchJobRequest{JobId: id}))
	if err != nil || !stream.Receive() || stream.Msg().GetJob().GetId() != id {
		t.Fatalf("watch through a follower: %v %v", err, stream.Err())
	}
	stream.Close()
	lr, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, WaitSeconds: 2}))
	if err != nil || len(lr.Msg.GetLeases()) != 1 {
		t.Fatalf("lease through a follower: %v", err)
	}
	l := lr.Msg.GetLeases()[0]

	// The leader dies with the lease outstanding.
	m.kill(li)
	newLeader := m.c.Leader(t, 10*time.Second)
	// Heartbeats go to whichever coordinator is left; the grace period keeps
	// the lease alive across the election.
	alive := other
	if m.c.Index(newLeader) == other {
		alive = follower
	}
	agents = montagev1connect.NewAgentServiceClient(http.DefaultClient, m.urls[alive])
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		hb, err := agents.Heartbeat(ctx, connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
			Leases: []*montagev1.LeaseProgress{{TaskId: l.GetTaskId(), Token: l.GetToken(), Progress: 0.5}}}))
		if err == nil && len(hb.Msg.GetRevokedTaskIds()) != 0 {
			t.Fatalf("lease revoked across the failover")
		}
		var ce *connect.Error
		if err != nil && !(errors.As(err, &ce) && ce.Code() == connect.CodeUnavailable) {
			t.Fatalf("heartbeat: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // an agent's heartbeat period
	}
	body := "segment"
	req, _ := http.NewRequest(http.MethodPut, l.GetOutputPutUrl(), stringsReader(body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("put: %v %v", err, resp)
	}
	if _, err := agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(),
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: sha(t, body), DurationSeconds: 2}})); err != nil {
		t.Fatalf("completion with the pre-failover token: %v", err)
	}
	j, err := montagev1connect.NewJobServiceClient(http.DefaultClient, m.urls[alive]).GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range j.Msg.GetJob().GetTasks() {
		if task.GetId() == l.GetTaskId() && (task.GetCommits() != 1 || task.GetAttempts() != 1) {
			t.Errorf("task after failover: %d commits, %d attempts; want 1 and 1", task.GetCommits(), task.GetAttempts())
		}
	}
}

// A demoted leader stops reporting leases: its gauge drops to 0 instead of
// keeping the last value it had while it led; the farm's gauges (jobs,
// tasks, agents) leave its /metrics and appear on the new leader's.
func TestDemotedLeaderReportsNoLeases(t *testing.T) {
	m := startMulti(t)
	leader := m.c.Leader(t, 10*time.Second)
	li := m.c.Index(leader)
	ctx := context.Background()
	jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, m.urls[li])
	agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, m.urls[li])
	if _, err := agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a1", Slots: 1, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{
		Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1", Duration: "2"}}}})); err != nil {
		t.Fatal(err)
	}
	if lr, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, WaitSeconds: 2})); err != nil || len(lr.Msg.GetLeases()) != 1 {
		t.Fatalf("lease: %v", err)
	}
	scrape := func(i int) string {
		resp, err := http.Get(m.urls[i] + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	gauge := func() string {
		for _, line := range strings.Split(scrape(li), "\n") {
			if strings.HasPrefix(line, "montage_leases_active ") {
				return strings.TrimPrefix(line, "montage_leases_active ")
			}
		}
		return ""
	}
	const running = `montage_jobs{state="running"} 1`
	waitUntil(t, "the leader's gauge to count the lease", func() bool { return gauge() == "1" })
	if !strings.Contains(scrape(li), running) || !strings.Contains(scrape(li), `montage_tasks{state="leased",type="render"} 1`) {
		t.Fatalf("the leader does not report the farm's state:\n%s", scrape(li))
	}
	for i := range m.urls {
		if i != li && strings.Contains(scrape(i), "montage_jobs{") {
			t.Fatalf("follower %d reports the farm's gauges", i)
		}
	}
	if err := m.c.Nodes[li].StepDown(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the demoted leader's gauge to drop", func() bool { return !m.c.Nodes[li].IsLeader() && gauge() == "0" })
	if strings.Contains(scrape(li), "montage_jobs{") {
		t.Error("the demoted leader still reports the farm's gauges")
	}
	waitUntil(t, "the new leader to report the farm's gauges", func() bool {
		nl := m.c.Leader(t, 10*time.Second)
		return strings.Contains(scrape(m.c.Index(nl)), running)
	})
}
