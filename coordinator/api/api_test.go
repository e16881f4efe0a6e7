package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/cluster/clustertest"
	"github.com/stream-montages/montage/internal/clock"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

type harness struct {
	store  blob.Store
	clk    *clock.Fake
	srv    *Server
	jobs   montagev1connect.JobServiceClient
	agents montagev1connect.AgentServiceClient
	url    string
	logs   *logBuffer // the server's log, debug included
}

// logBuffer is a log that tests read while the server writes it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is how many lines hold all of parts.
func (l *logBuffer) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.b.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, Config{})
}

func newHarnessWith(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessStore(t, cfg, nil)
}

// newHarnessStore serves the local store through wrap (nil: as it is).
func newHarnessStore(t testing.TB, cfg Config, wrap func(blob.Store) blob.Store) *harness {
	t.Helper()
	dir := t.TempDir()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	node, err := cluster.Open(cluster.Config{DataDir: dir, RaftAddr: clustertest.FreeAddr(t), Bootstrap: true, Fast: true, APIAddr: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown() })
	if err := node.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	store, err := blob.NewLocal(dir+"/objects", hs.URL, clk)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.LeaseTTL, cfg.LeaseGrace, cfg.MaxLeaseWait = 10*time.Second, 5*time.Second, 2*time.Second
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 2
	}
	var served blob.Store = store
	if wrap != nil {
		served = wrap(store)
	}
	srv := New(node, served, clk, cfg, log)
	srv.Mount(mux)
	mux.Handle(blob.PathPrefix, store)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Run(ctx)
	// Tests move the fake clock; the takeover must stamp its start first.
	deadline := time.Now().Add(10 * time.Second)
	for srv.lead.LeaderSince().IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not take over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &harness{store: served, clk: clk, srv: srv, url: hs.URL, logs: logs,
		jobs:   montagev1connect.NewJobServiceClient(hs.Client(), hs.URL),
		agents: montagev1connect.NewAgentServiceClient(hs.Client(), hs.URL)}
}

func (h *harness) submit(t *testing.T, n int) *montagev1.Job {
	t.Helper()
	s := &montagev1.JobSpec{Name: "t"}
	for i := 0; i < n; i++ {
		s.Highlights = append(s.Highlights, &montagev1.Highlight{Url: "http://src/v.mp4", At: fmt.Sprint(i * 10), Duration: fmt.Sprint(5 + i)})
	}
	r, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.GetJob()
}

func (h *harness) register(t *testing.T, id string) {
	t.Helper()
	if _, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: id, Slots: 2, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) lease(t *testing.T, agent string, n int32, wait float64) []*montagev1.Lease {
	t.Helper()
	r, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: n, WaitSeconds: wait}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.GetLeases()
}

func (h *harness) complete(t *testing.T, agent string, l *montagev1.Lease) error {
	t.Helper()
	return h.completeKept(t, agent, l, false)
}

// completeKept completes l, saying whether the agent keeps its output for
// the montage's concat.
func (h *harness) completeKept(t *testing.T, agent string, l *montagev1.Lease, kept bool) error {
	t.Helper()
	body := "bytes of " + l.GetOutputKey()
	req, _ := http.NewRequest(http.MethodPut, l.GetOutputPutUrl(), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("put %s: %v %v", l.GetOutputKey(), err, resp)
	}
	resp.Body.Close()
	sum := sha256.Sum256([]byte(body))
	_, err = h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: agent, TaskId: l.GetTaskId(), Token: l.GetToken(), Kept: kept,
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5},
	}))
	return err
}

func (h *harness) job(t *testing.T, id string) *montagev1.Job {
	t.Helper()
	r, err := h.jobs.GetJob(context.Background(), connect.NewRequest(&montagev1.GetJobRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.GetJob()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJobThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	j := h.submit(t, 2)
	if j.GetState() != montagev1.JobState_JOB_STATE_QUEUED || len(j.GetTasks()) != 3 {
		t.Fatalf("submitted job %s with %d tasks", j.GetState(), len(j.GetTasks()))
	}
	ls := h.lease(t, "a1", 2, 1)
	if len(ls) != 2 || ls[0].GetRender().GetDurationSeconds() != 6 {
		t.Fatalf("leases %v: want both renders, longest first", ls)
	}
	if ls[0].GetProfile().GetResolution() != "1280x720" || ls[0].GetOutputKey() != blob.SegmentKey(j.GetId(), ls[0].GetTaskId(), ls[0].GetToken()) {
		t.Errorf("lease lacks the resolved profile or attempt key: %v", ls[0])
	}
	// Each render knows its place in the montage: the concat's order.
	for _, l := range ls {
		want := int32(0)
		if strings.HasSuffix(l.GetTaskId(), "-r001") {
			want = 1
		}
		if l.GetSegmentIndex() != want || l.GetSegmentCount() != 2 {
			t.Errorf("lease %s: segment %d of %d, want %d of 2", l.GetTaskId(), l.GetSegmentIndex(), l.GetSegmentCount(), want)
		}
	}
	// Progress from heartbeats shows in the job.
	hb, err := h.agents.Heartbeat(context.Background(), connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
		Leases: []*montagev1.LeaseProgress{{TaskId: ls[0].GetTaskId(), Token: ls[0].GetToken(), Progress: 0.5}, {TaskId: "nope", Token: 1}}}))
	if err != nil || len(hb.Msg.GetRevokedTaskIds()) != 1 || hb.Msg.GetRevokedTaskIds()[0] != "nope" {
		t.Fatalf("heartbeat: %v %v", hb, err)
	}
	if p := h.job(t, j.GetId()).GetProgress(); p <= 0 || p >= 1 {
		t.Errorf("job progress %v after a half-done task", p)
	}
	// A key other than this attempt's is refused.
	_, err = h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: "a1", TaskId: ls[1].GetTaskId(), Token: ls[1].GetToken(),
		Result: &montagev1.TaskResult{Key: "jobs/x/other.mp4", Size: 1, Sha256: strings.Repeat("0", 64), DurationSeconds: 5},
	}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("completion naming another key: %v", err)
	}
	for _, l := range ls {
		if err := h.complete(t, "a1", l); err != nil {
			t.Fatal(err)
		}
	}
	c := h.lease(t, "a1", 1, 1)
	if len(c) != 1 || c[0].GetType() != montagev1.TaskType_TASK_TYPE_CONCAT || len(c[0].GetConcat().GetSegments()) != 2 {
		t.Fatalf("concat lease: %v", c)
	}
	if c[0].GetSegmentCount() != 0 {
		t.Errorf("a concat is no segment, yet its lease says %d segments", c[0].GetSegmentCount())
	}
	if err := h.complete(t, "a1", c[0]); err != nil {
		t.Fatal(err)
	}
	done := h.job(t, j.GetId())
	if done.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED || done.GetProgress() != 1 {
		t.Fatalf("job %s progress %v", done.GetState(), done.GetProgress())
	}
	// A link handed out before the janitor's finalize still points at the
	// stable key, which outlives the attempt objects; it carries what was
	// accepted, for the download to check.
	u, err := h.jobs.GetOutputURL(context.Background(), connect.NewRequest(&montagev1.GetOutputURLRequest{JobId: j.GetId()}))
	stable := blob.OutputKey(j.GetId(), "montage")
	if err != nil || u.Msg.GetKey() != stable || !strings.Contains(u.Msg.GetUrl(), stable) {
		t.Fatalf("output url %v %v, want the stable key %s", u, err, stable)
	}
	if want := sha(t, "bytes of "+done.GetOutputs()["montage"]); u.Msg.GetSha256() != want || u.Msg.GetSize() != int64(len("bytes of "+done.GetOutputs()["montage"])) {
		t.Errorf("output url checksum %s/%d, want %s", u.Msg.GetSha256(), u.Msg.GetSize(), want)
	}
	if got := h.job(t, j.GetId()).GetOutputs()["montage"]; got != stable {
		t.Errorf("job output after the link: %s, want %s", got, stable)
	}
}

func TestLongPollWakesOnSubmit(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	got := make(chan []*montagev1.Lease, 1)
	go func() {
		r, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, WaitSeconds: 30}))
		if err != nil {
			got <- nil
			return
		}
		got <- r.Msg.GetLeases()
	}()
	h.submit(t, 1)
	select {
	case ls := <-got:
		if len(ls) != 1 {
			t.Fatalf("long poll returned %v", ls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not wake on a new job")
	}
	// Nothing to do: an empty answer after the (capped) wait, not an error.
	if ls := h.lease(t, "a1", 1, 0.05); len(ls) != 0 {
		t.Errorf("got %v with nothing queued", ls)
	}
}

func TestLeaseExpiresOnTheClock(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	h.register(t, "a2")
	j := h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	// Renewed before the TTL: survives.
	h.clk.Advance(8 * time.Second)
	if _, err := h.agents.Heartbeat(context.Background(), connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
		Leases: []*montagev1.LeaseProgress{{TaskId: l.GetTaskId(), Token: l.GetToken()}}})); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(8 * time.Second)
	if st := h.job(t, j.GetId()).GetTasks()[0].GetState(); st != montagev1.TaskState_TASK_STATE_LEASED {
		t.Fatalf("renewed lease ended: %s", st)
	}
	// Not renewed: expires, task requeued with its error, and a2 gets it.
	waitUntil(t, "lease expiry", func() bool {
		h.clk.Advance(time.Second)
		return h.job(t, j.GetId()).GetTasks()[0].GetState() == montagev1.TaskState_TASK_STATE_QUEUED
	})
	task := h.job(t, j.GetId()).GetTasks()[0]
	if !strings.Contains(task.GetError(), "lease expired") || task.GetAttempts() != 1 {
		t.Errorf("expired task: %v", task)
	}
	l2 := h.lease(t, "a2", 1, 1)
	if len(l2) != 1 || l2[0].GetTaskId() != l.GetTaskId() || l2[0].GetAttempt() != 2 {
		t.Fatalf("re-lease: %v", l2)
	}
	hb, _ := h.agents.Heartbeat(context.Background(), connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
		Leases: []*montagev1.LeaseProgress{{TaskId: l.GetTaskId(), Token: l.GetToken()}}}))
	if len(hb.Msg.GetRevokedTaskIds()) != 1 {
		t.Errorf("the zombie's heartbeat was not told to stop: %v", hb.Msg)
	}
}

func TestCancelRevokesLeases(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	j := h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	if _, err := h.jobs.CancelJob(context.Background(), connect.NewRequest(&montagev1.CancelJobRequest{JobId: j.GetId()})); err != nil {
		t.Fatal(err)
	}
	hb, err := h.agents.Heartbeat(context.Background(), connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
		Leases: []*montagev1.LeaseProgress{{TaskId: l.GetTaskId(), Token: l.GetToken()}}}))
	if err != nil || len(hb.Msg.GetRevokedTaskIds()) != 1 {
		t.Fatalf("heartbeat after cancel: %v %v", hb, err)
	}
	if _, err := h.jobs.CancelJob(context.Background(), connect.NewRequest(&montagev1.CancelJobRequest{JobId: j.GetId()})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("second cancel: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
		code connect.Code
		msg  string
	}{
		{"submit without spec", func() error {
			_, err := h.jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{}))
			return err
		}, connect.CodeInvalidArgument, "spec: is missing"},
		{"submit with bad url", func() error {
			_, err := h.jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Url: "ftp://x/y", At: "1"}}}}))
			return err
		}, connect.CodeInvalidArgument, "highlights[0].url"},
		{"get missing job", func() error {
			_, err := h.jobs.GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{JobId: "nope"}))
			return err
		}, connect.CodeNotFound, "not found"},
		{"get without id", func() error {
			_, err := h.jobs.GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{}))
			return err
		}, connect.CodeInvalidArgument, "job_id"},
		{"lease unregistered", func() error {
			_, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "ghost", FreeSlots: 1}))
			return err
		}, connect.CodeNotFound, "register first"},
		{"register bad id", func() error {
			_, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a b", Slots: 1}))
			return err
		}, connect.CodeInvalidArgument, "agent_id"},
		{"register no slots", func() error {
			_, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a", Slots: 0}))
			return err
		}, connect.CodeInvalidArgument, "slots"},
		{"output of unfinished job", func() error {
			j := h.submit(t, 1)
			_, err := h.jobs.GetOutputURL(ctx, connect.NewRequest(&montagev1.GetOutputURLRequest{JobId: j.GetId()}))
			return err
		}, connect.CodeFailedPrecondition, "no \"montage\" output"},
	}
	for _, c := range cases {
		err := c.call()
		if connect.CodeOf(err) != c.code || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %s containing %q", c.name, err, c.code, c.msg)
		}
	}
}

func TestIdempotentSubmit(t *testing.T) {
	h := newHarness(t)
	req := &montagev1.SubmitJobRequest{IdempotencyKey: "k1", Spec: &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Url: "http://s/v.mp4", At: "1"}}}}
	a, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(req))
	if err != nil || !b.Msg.GetExisting() || b.Msg.GetJob().GetId() != a.Msg.GetJob().GetId() {
		t.Fatalf("resubmit: %v %v", b, err)
	}
	l, _ := h.jobs.ListJobs(context.Background(), connect.NewRequest(&montagev1.ListJobsRequest{}))
	if len(l.Msg.GetJobs()) != 1 {
		t.Errorf("%d jobs after a resubmit", len(l.Msg.GetJobs()))
	}
}

func TestWatchJobStreamsUntilDone(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	j := h.submit(t, 1)
	stream, err := h.jobs.WatchJob(context.Background(), connect.NewRequest(&montagev1.WatchJobRequest{JobId: j.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, l := range h.lease(t, "a1", 1, 1) {
			_ = h.complete(t, "a1", l)
		}
		for _, l := range h.lease(t, "a1", 1, 1) {
			_ = h.complete(t, "a1", l)
		}
	}()
	var states []montagev1.JobState
	for stream.Receive() {
		states = append(states, stream.Msg().GetJob().GetState())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(states) < 2 || states[0] != montagev1.JobState_JOB_STATE_QUEUED || states[len(states)-1] != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Errorf("watched states %v; want queued first and succeeded last", states)
	}
}

func TestDrainAndListAgents(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	h.register(t, "a2")
	cl := montagev1connect.NewClusterServiceClient(http.DefaultClient, h.url)
	ctx := context.Background()
	if _, err := cl.DrainAgent(ctx, connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: "a1", Drain: true})); err != nil {
		t.Fatal(err)
	}
	h.submit(t, 2)
	if ls := h.lease(t, "a1", 2, 0.1); len(ls) != 0 {
		t.Fatalf("a draining agent got work: %v", ls)
	}
	if ls := h.lease(t, "a2", 1, 1); len(ls) != 1 {
		t.Fatalf("a ready agent got %d leases", len(ls))
	}
	resp, err := cl.ListAgents(ctx, connect.NewRequest(&montagev1.ListAgentsRequest{}))
	if err != nil || len(resp.Msg.GetAgents()) != 2 {
		t.Fatalf("list agents: %v %v", resp, err)
	}
	a1, a2 := resp.Msg.GetAgents()[0], resp.Msg.GetAgents()[1]
	if a1.GetState() != montagev1.AgentState_AGENT_STATE_DRAINING || a2.GetSlotsInUse() != 1 || a2.GetLastSeen() == nil {
		t.Errorf("agents: %v / %v", a1, a2)
	}
	// Re-registering (an agent restart) keeps the operator's drain.
	h.register(t, "a1")
	if _, err := cl.DrainAgent(ctx, connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: "a1"})); err != nil {
		t.Fatal(err)
	}
	if ls := h.lease(t, "a1", 1, 1); len(ls) != 1 {
		t.Errorf("an undrained agent got %d leases", len(ls))
	}
	if _, err := cl.DrainAgent(ctx, connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: "ghost", Drain: true})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("drain of an unknown agent: %v", err)
	}
	st, err := cl.GetStatus(ctx, connect.NewRequest(&montagev1.GetStatusRequest{}))
	if err != nil || st.Msg.GetLeaderId() == "" || len(st.Msg.GetMembers()) != 1 || !st.Msg.GetMembers()[0].GetLeader() || st.Msg.GetAppliedIndex() == 0 {
		t.Errorf("status of a cluster of one: %v %v", st, err)
	}
}
