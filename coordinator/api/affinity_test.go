package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A montage's concat goes to the agent that keeps its segments: another
// agent asking first is given nothing while that agent could come, and the
// keeper then gets it. A keeper that does not come within the affinity
// leaves it to a waiting agent, whose long poll wakes for it. What an
// agent keeps is what its polls last said.
func TestConcatWaitsForTheAgentKeepingItsSegments(t *testing.T) {
	h := newHarness(t)
	h.register(t, "keeper")
	h.register(t, "other")
	ctx := context.Background()
	renderAll := func() string {
		t.Helper()
		j := h.submit(t, 2)
		ls := h.lease(t, "keeper", 2, 1)
		if len(ls) != 2 {
			t.Fatalf("leases %v: want both renders", ls)
		}
		for i, l := range ls {
			if err := h.completeKept(t, "keeper", l, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		return j.GetId()
	}
	concatOf := func(ls []*montagev1.Lease, job string) bool {
		return len(ls) == 1 && ls[0].GetType() == montagev1.TaskType_TASK_TYPE_CONCAT && ls[0].GetJobId() == job
	}

	// The evaluation of other's poll is the proof it was offered nothing.
	job := renderAll()
	if ls := h.lease(t, "other", 2, 0); len(ls) != 0 {
		t.Fatalf("other was granted %v while the keeper could take the concat", ls)
	}
	if h.logs.count(`msg="concat waits for an agent keeping its segments"`, "task="+job+"-concat", "agent=other") != 1 {
		t.Error("the coordinator did not log that the concat waits for its keeper")
	}
	if ls := h.lease(t, "keeper", 1, 0); !concatOf(ls, job) {
		t.Fatalf("the keeper was granted %v, want the concat of %s", ls, job)
	}

	// The keeper stays away: other's poll waits, and takes the concat
	// when the affinity is over (the poll's own wait, capped at 2 s here,
	// would end with nothing).
	job = renderAll()
	got := make(chan []*montagev1.Lease, 1)
	base := h.logs.count(`msg="lease poll evaluated"`, "agent=other")
	go func() {
		r, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "other", FreeSlots: 2, WaitSeconds: 60}))
		if err != nil {
			t.Error(err)
		}
		got <- r.Msg.GetLeases()
	}()
	waitUntil(t, "other's poll evaluated", func() bool { return h.logs.count(`msg="lease poll evaluated"`, "agent=other") > base })
	h.clk.Advance(3 * time.Second)
	select {
	case ls := <-got:
		if !concatOf(ls, job) {
			t.Fatalf("after the affinity other was granted %v, want the concat of %s", ls, job)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("other's poll did not wake when the affinity was over")
	}

	// A poll that no longer lists the job ends the keeping at once.
	job = renderAll()
	if _, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "keeper", FreeSlots: 0, KeptJobs: []string{"j-else"}})); err != nil {
		t.Fatal(err)
	}
	if ls := h.lease(t, "other", 2, 0); !concatOf(ls, job) {
		t.Fatalf("other was granted %v; the keeper no longer keeps %s", ls, job)
	}

	// Bad lists are refused by name.
	for _, bad := range []struct {
		kept []string
		want string
	}{
		{[]string{""}, "kept_jobs[0]"},
		{[]string{"j1", strings.Repeat("x", 65)}, "kept_jobs[1]"},
		{make([]string, maxKeptJobs+1), "kept_jobs: lists 1025 jobs"},
	} {
		_, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "keeper", KeptJobs: bad.kept}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("kept_jobs %d long: %v, want InvalidArgument naming %q", len(bad.kept), err, bad.want)
		}
	}
}
