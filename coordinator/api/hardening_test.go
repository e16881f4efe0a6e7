package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

func (h *harness) handBack(t *testing.T, agent string, l *montagev1.Lease) {
	t.Helper()
	if _, err := h.agents.FailTask(context.Background(), connect.NewRequest(&montagev1.FailTaskRequest{
		AgentId: agent, TaskId: l.GetTaskId(), Token: l.GetToken(), Error: "shutting down", Handback: true,
	})); err != nil {
		t.Fatal(err)
	}
}

// Every grant uploads to a key of its own, also after a handback gave the
// attempt back; an accepted object cannot be replaced by replaying its
// presigned PUT.
func TestEveryGrantHasItsOwnKeyAndAcceptedObjectsStay(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	h.submit(t, 1)
	first := h.lease(t, "a1", 1, 1)[0]
	h.handBack(t, "a1", first)
	second := h.lease(t, "a1", 1, 1)[0]
	if second.GetTaskId() != first.GetTaskId() || second.GetAttempt() != first.GetAttempt() {
		t.Fatalf("handback used an attempt: %d then %d", first.GetAttempt(), second.GetAttempt())
	}
	if second.GetOutputKey() == first.GetOutputKey() {
		t.Fatalf("two grants share the key %s", first.GetOutputKey())
	}
	if err := h.complete(t, "a1", second); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, second.GetOutputPutUrl(), strings.NewReader("replayed bytes"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("replayed PUT of an accepted object: HTTP %d, want 412", resp.StatusCode)
	}
	if err := h.store.Verify(context.Background(), second.GetOutputKey(), int64(len("bytes of "+second.GetOutputKey())), sha(t, "bytes of "+second.GetOutputKey())); err != nil {
		t.Errorf("accepted object changed: %v", err)
	}
}

// A grant whose response never reached the agent is sent again on its
// next LeaseTask (same token, no attempt used), and a lease the agent's
// heartbeat does not list goes back to the queue without using an attempt,
// instead of expiring as if the agent had died.
func TestLostGrantsCostNoAttempt(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	j := h.submit(t, 2)
	lost := h.lease(t, "a1", 1, 1)[0] // the agent never saw this response
	r, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{
		AgentId: "a1", FreeSlots: 2, WaitSeconds: 1, HeldListed: true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if ls := r.Msg.GetLeases(); len(ls) != 1 || ls[0].GetTaskId() != lost.GetTaskId() || ls[0].GetToken() != lost.GetToken() || ls[0].GetAttempt() != 1 {
		t.Fatalf("lost grant not sent again as it was: %v", ls)
	}
	// Listed as held now: the next call brings new work, not the same.
	r, err = h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{
		AgentId: "a1", FreeSlots: 1, WaitSeconds: 1, HeldListed: true,
		Held: []*montagev1.LeaseProgress{{TaskId: lost.GetTaskId(), Token: lost.GetToken()}},
	}))
	if err != nil || len(r.Msg.GetLeases()) != 1 || r.Msg.GetLeases()[0].GetTaskId() == lost.GetTaskId() {
		t.Fatalf("second lease: %v %v", r.Msg.GetLeases(), err)
	}
	other := r.Msg.GetLeases()[0]
	// The agent then heartbeats only the other lease. Within the lease
	// lifetime the omission may be a grant still on its way: kept.
	hb := func() {
		if _, err := h.agents.Heartbeat(context.Background(), connect.NewRequest(&montagev1.HeartbeatRequest{
			AgentId: "a1", Leases: []*montagev1.LeaseProgress{{TaskId: other.GetTaskId(), Token: other.GetToken()}},
		})); err != nil {
			t.Fatal(err)
		}
	}
	hb()
	if task := findTask(h.job(t, j.GetId()), lost.GetTaskId()); task.GetState() != montagev1.TaskState_TASK_STATE_LEASED {
		t.Fatalf("requeued at once: %s", task.GetState())
	}
	h.clk.Advance(6 * time.Second) // past half the 10-s lease lifetime, before its expiry
	hb()
	task := findTask(h.job(t, j.GetId()), lost.GetTaskId())
	if task.GetState() != montagev1.TaskState_TASK_STATE_QUEUED || task.GetAttempts() != 0 {
		t.Fatalf("lease the agent does not hold: %s after %d attempts, want queued with none used", task.GetState(), task.GetAttempts())
	}
	if !strings.Contains(task.GetError(), "did not hold") && task.GetError() != "" {
		t.Errorf("error %q", task.GetError())
	}
}

func findTask(j *montagev1.Job, id string) *montagev1.Task {
	for _, t := range j.GetTasks() {
		if t.GetId() == id {
			return t
		}
	}
	return nil
}

// An agent that fails a job three times is blocked from it, which get
// shows; with more failures in a row it is quarantined and leases nothing
// until an operator undrains it.
func TestBlocklistAndQuarantineThroughTheAPI(t *testing.T) {
	h := newHarnessWith(t, Config{QuarantineAfter: 4, MaxAttempts: 9})
	h.register(t, "bad")
	var jobs []*montagev1.Job
	for i := 0; i < 3; i++ {
		jobs = append(jobs, h.submit(t, 3))
	}
	fail := func() *montagev1.Lease {
		ls := h.lease(t, "bad", 1, 0.2)
		if len(ls) == 0 {
			return nil
		}
		if _, err := h.agents.FailTask(context.Background(), connect.NewRequest(&montagev1.FailTaskRequest{
			AgentId: "bad", TaskId: ls[0].GetTaskId(), Token: ls[0].GetToken(), Error: "encoder crashed",
		})); err != nil {
			t.Fatal(err)
		}
		return ls[0]
	}
	for i := 0; i < 3; i++ {
		if l := fail(); l == nil || l.GetJobId() != jobs[0].GetId() {
			t.Fatalf("failure %d: %v", i, l)
		}
	}
	if got := h.job(t, jobs[0].GetId()).GetBlockedAgents(); len(got) != 1 || got[0] != "bad" {
		t.Fatalf("blocked agents of the first job: %v", got)
	}
	// The next lease comes from the second job: the first one blocked it.
	l := fail()
	if l == nil || l.GetJobId() != jobs[1].GetId() {
		t.Fatalf("after the block: %v", l)
	}
	list, err := h.srv.ListAgents(context.Background(), connect.NewRequest(&montagev1.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	a := list.Msg.GetAgents()[0]
	if a.GetState() != montagev1.AgentState_AGENT_STATE_QUARANTINED || !strings.Contains(a.GetStateReason(), "encoder crashed") {
		t.Fatalf("after 4 in a row: %s %q", a.GetState(), a.GetStateReason())
	}
	if ls := h.lease(t, "bad", 1, 0.1); len(ls) != 0 {
		t.Fatalf("a quarantined agent got %v", ls)
	}
	if _, err := h.srv.DrainAgent(context.Background(), connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: "bad", Drain: false})); err != nil {
		t.Fatal(err)
	}
	if ls := h.lease(t, "bad", 1, 1); len(ls) != 1 {
		t.Fatalf("undrained agent got %v", ls)
	}
}

// Agents that have not called for -agent-gc are forgotten; one that keeps
// calling stays. (An agent holding a lease is never forgotten: the state
// machine refuses, see fsm's TestRemoveAgentOnlyWhenIdle.)
func TestAgentGarbageCollection(t *testing.T) {
	h := newHarnessWith(t, Config{AgentGC: 2 * time.Minute, JanitorInterval: time.Second})
	h.register(t, "idle")
	h.register(t, "alive")
	agentIDs := func() map[string]bool {
		r, err := h.srv.ListAgents(context.Background(), connect.NewRequest(&montagev1.ListAgentsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, a := range r.Msg.GetAgents() {
			out[a.GetId()] = true
		}
		return out
	}
	start := h.clk.Now()
	h.advanceUntil(t, "idle agent forgotten", func() bool {
		_ = h.lease(t, "alive", 1, 0) // keeps calling
		return !agentIDs()["idle"]
	})
	if waited := h.clk.Now().Sub(start); waited < 2*time.Minute {
		t.Errorf("forgotten after %s, before -agent-gc", waited)
	}
	if !agentIDs()["alive"] {
		t.Error("an agent that keeps calling was forgotten")
	}
}

// Invalid numbers in an agent's report are refused with the field named,
// not turned into a retryable error.
func TestAgentReportLimits(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1") // 2 slots
	_, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 3}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "free_slots: 3 is more than the 2 slots") {
		t.Errorf("free_slots over the registered slots: %v", err)
	}
	h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	for _, d := range []float64{math.NaN(), -1, math.Inf(1)} {
		_, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
			AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(),
			Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: 1, Sha256: strings.Repeat("0", 64), DurationSeconds: d},
		}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "result.duration_seconds") {
			t.Errorf("duration %v: %v, want InvalidArgument naming the field", d, err)
		}
	}
}

// A leader elected a moment ago has heard from no agent yet; a job with
// hwaccel auto submitted then must still see the farm's GPU agents rather
// than pin software encoding.
func TestEncoderChoiceRightAfterAnElection(t *testing.T) {
	h := newHarness(t)
	if _, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: "gpu", Slots: 1,
		Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264", "h264_nvenc"}, Hwaccels: []string{"nvenc"}, GpuSessions: 2}})); err != nil {
		t.Fatal(err)
	}
	submit := func() string {
		r, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{
			Profile: &montagev1.RenderProfile{Hwaccel: "auto"}, Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1"}},
		}}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.GetJob().GetSpec().GetProfile().GetEncoder()
	}
	h.clk.Advance(10 * time.Minute) // the agent went quiet: it is offline
	if enc := submit(); enc != "libx264" {
		t.Fatalf("with the GPU agent long gone: %s, want libx264", enc)
	}
	h.srv.lead.TakeOver() // what a new leader does after its election
	if enc := submit(); enc != "h264_nvenc" {
		t.Errorf("right after an election: %s, want h264_nvenc (the registered GPU agent has not called yet)", enc)
	}
}

// Limits answer with the field and the reason and change nothing: a
// montage over six hours, a plan over the task cap, a farm full of
// unfinished jobs.
func TestLimits(t *testing.T) {
	h := newHarnessWith(t, Config{MaxQueuedJobs: 2, MaxTasksPerJob: 4})
	submit := func(s *montagev1.JobSpec) error {
		_, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s}))
		return err
	}
	long := &montagev1.JobSpec{}
	for i := 0; i < 37; i++ {
		long.Highlights = append(long.Highlights, &montagev1.Highlight{Url: "http://src/v.mp4", At: "1", Duration: "600"})
	}
	if err := submit(long); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "highlights: add up to a montage of 6:10:00") {
		t.Errorf("six hours and more: %v", err)
	}
	chunky := &montagev1.JobSpec{ChunkSeconds: 10, Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1", Duration: "60"}}}
	if err := submit(chunky); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "chunk_seconds: the montage would be 7 tasks; the limit is 4") {
		t.Errorf("too many tasks: %v", err)
	}
	h.submit(t, 1)
	h.submit(t, 1)
	if err := submit(&montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1"}}}); connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "-max-queued-jobs") {
		t.Errorf("a full farm: %v", err)
	}
	// A schedule's fire counts against the limit too: refused, it leaves
	// the slot unfired (due again once jobs finish) and adds no job.
	sc := montagev1connect.NewScheduleServiceClient(http.DefaultClient, h.url)
	if _, err := sc.AddSchedule(context.Background(), connect.NewRequest(&montagev1.AddScheduleRequest{Schedule: &montagev1.MontageSchedule{
		Name: "weekly", Cron: "0 9 * * 1", Tz: "UTC", WindowSeconds: 7 * 86400, Group: "all"}})); err != nil {
		t.Fatal(err)
	}
	_, err := sc.RunSchedule(context.Background(), connect.NewRequest(&montagev1.RunScheduleRequest{Name: "weekly"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "-max-queued-jobs") || !strings.Contains(err.Error(), `schedule "weekly"`) {
		t.Errorf("a schedule fired into a full farm: %v", err)
	}
	ls, err := sc.ListSchedules(context.Background(), connect.NewRequest(&montagev1.ListSchedulesRequest{}))
	if err != nil || len(ls.Msg.GetSchedules()) != 1 || ls.Msg.GetSchedules()[0].GetLastSlot() != nil {
		t.Errorf("the refused fire was recorded: %v %v", ls, err)
	}
	list, err := h.jobs.ListJobs(context.Background(), connect.NewRequest(&montagev1.ListJobsRequest{}))
	if err != nil || len(list.Msg.GetJobs()) != 2 {
		t.Errorf("refused submissions changed the job list: %d jobs, %v", len(list.Msg.GetJobs()), err)
	}
}

// A concat with more inputs than a lease carries reads them from an object
// that the lease names with its checksum; sources are named once per job.
func TestConcatInputsFromAnObject(t *testing.T) {
	h := newHarnessWith(t, Config{InlineConcatInputs: 1})
	h.register(t, "a1")
	h.submit(t, 2)
	for _, l := range h.lease(t, "a1", 2, 1) {
		if l.GetRender().GetSourceUrl() != "http://src/v.mp4" {
			t.Errorf("render lease source %q", l.GetRender().GetSourceUrl())
		}
		if err := h.complete(t, "a1", l); err != nil {
			t.Fatal(err)
		}
	}
	c := h.lease(t, "a1", 1, 1)[0]
	if c.GetConcat() != nil || c.GetConcatInputsUrl() == "" {
		t.Fatalf("concat lease carries its inputs itself: %v", c)
	}
	resp, err := http.Get(c.GetConcatInputsUrl())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(b)
	in := &montagev1.ConcatInput{}
	if hex.EncodeToString(sum[:]) != c.GetConcatInputsSha256() || int64(len(b)) != c.GetConcatInputsSize() || proto.Unmarshal(b, in) != nil {
		t.Fatalf("inputs object does not match the lease's checksum")
	}
	if len(in.GetSegments()) != 2 || in.GetSegments()[0].GetSourceUrl() != "http://src/v.mp4" || in.GetSegments()[1].GetSha256() == "" {
		t.Errorf("inputs: %v", in.GetSegments())
	}
}
