package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// An agent's schedule, read in its time zone, decides when it gets work;
// outside it the agent is listed idle with the reason, and with a grace
// its running work is handed back once the window has been closed that
// long. The fake clock starts on Sunday 2026-11-29 12:00 UTC.
func TestAgentSchedule(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a1", Slots: 1, TimeZone: "Europe/Berlin",
		Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a2", Slots: 1, TimeZone: "Mars/Olympus"})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "time_zone") {
		t.Errorf("an unknown time zone: %v", err)
	}
	cluster := montagev1connect.NewClusterServiceClient(http.DefaultClient, h.url)
	for _, bad := range []*montagev1.SetAgentScheduleRequest{
		{AgentId: "a1", Schedule: "someday 10:00-11:00"},
		{AgentId: "a1", Schedule: "mon", GraceSeconds: -1},
	} {
		_, err := cluster.SetAgentSchedule(ctx, connect.NewRequest(bad))
		field := "schedule"
		if bad.GraceSeconds != 0 {
			field = "grace_seconds"
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%+v: %v, want InvalidArgument naming %s", bad, err, field)
		}
	}
	r, err := cluster.SetAgentSchedule(ctx, connect.NewRequest(&montagev1.SetAgentScheduleRequest{AgentId: "a1", Schedule: "mon-fri 22:00-07:00", GraceSeconds: 60}))
	if err != nil {
		t.Fatal(err)
	}
	if a := r.Msg.GetAgent(); a.GetTimeZone() != "Europe/Berlin" || !strings.Contains(a.GetIdleReason(), "outside its schedule (mon-fri 22:00-07:00, Europe/Berlin)") {
		t.Errorf("after setting: %+v", a)
	}
	h.submit(t, 1)
	if l := h.lease(t, "a1", 1, 0); len(l) != 0 {
		t.Fatalf("granted on Sunday afternoon, outside the schedule: %v", l)
	}
	// Tuesday 06:58 in Berlin (05:58 UTC): inside Monday night's window.
	h.clk.Advance(time.Date(2026, 12, 1, 5, 58, 0, 0, time.UTC).Sub(h.clk.Now()))
	l := h.lease(t, "a1", 1, 0)
	if len(l) != 1 {
		t.Fatal("no work inside the schedule")
	}
	agents, err := cluster.ListAgents(ctx, connect.NewRequest(&montagev1.ListAgentsRequest{}))
	if err != nil || agents.Msg.GetAgents()[0].GetIdleReason() != "" {
		t.Fatalf("idle inside its window: %v %v", agents.Msg.GetAgents(), err)
	}
	// Past 07:00 plus the minute of grace, the leader hands the work back;
	// until then, heartbeats keep the lease.
	h.advanceUntil(t, "the work handed back after hours", func() bool {
		r, err := h.agents.Heartbeat(ctx, connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "a1",
			Leases: []*montagev1.LeaseProgress{{TaskId: l[0].GetTaskId(), Token: l[0].GetToken()}}}))
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Msg.GetRevokedTaskIds()) == 1
	})
	if now := h.clk.Now(); now.Before(time.Date(2026, 12, 1, 6, 1, 0, 0, time.UTC)) {
		t.Errorf("handed back at %s, before the window closed plus its grace", now)
	}
	j, err := h.jobs.GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{JobId: l[0].GetJobId()}))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range j.Msg.GetJob().GetTasks() {
		if task.GetId() == l[0].GetTaskId() && (task.GetState() != montagev1.TaskState_TASK_STATE_QUEUED || task.GetAttempts() != 0) {
			t.Errorf("handed-back task: %s after %d attempts, want queued without using one", task.GetState(), task.GetAttempts())
		}
	}
	// What the agent reports of its PC shows as its idle reason.
	if _, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 0,
		Status: &montagev1.AgentStatus{Paused: "on battery"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.SetAgentSchedule(ctx, connect.NewRequest(&montagev1.SetAgentScheduleRequest{AgentId: "a1"})); err != nil {
		t.Fatal(err)
	}
	agents, err = cluster.ListAgents(ctx, connect.NewRequest(&montagev1.ListAgentsRequest{}))
	if err != nil || agents.Msg.GetAgents()[0].GetIdleReason() != "on battery" || agents.Msg.GetAgents()[0].GetSchedule() != "" {
		t.Errorf("a paused agent with its schedule cleared: %v %v", agents.Msg.GetAgents(), err)
	}
}

// An agent speaking a protocol this coordinator does not is refused with
// both releases named; one older than the field (0) speaks 1.
func TestAgentProtocolVersion(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "new", Slots: 1, Version: "9.0.0", Protocol: 99}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "release 9.0.0") || !strings.Contains(err.Error(), "speaks agent protocol 99") {
		t.Errorf("protocol 99: %v", err)
	}
	if _, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "old", Slots: 1})); err != nil {
		t.Errorf("an agent that does not say its protocol: %v", err)
	}
	r, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "cur", Slots: 1, Version: "0.1.0", Protocol: 1}))
	if err != nil || r.Msg.GetAgent().GetVersion() != "0.1.0" || r.Msg.GetAgent().GetProtocol() != 1 {
		t.Errorf("a current agent: %v %v", r.Msg.GetAgent(), err)
	}
}
