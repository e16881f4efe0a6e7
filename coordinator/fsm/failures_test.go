package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// failOnce grants taskID to agent and fails the attempt.
func failOnce(t *testing.T, l *log, taskID, agent string) {
	t.Helper()
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: taskID, AgentID: agent}})
	if g.Err != nil {
		t.Fatalf("grant %s to %s: %v", taskID, agent, g.Err)
	}
	if r := l.apply(&Command{Fail: &FailCmd{TaskID: taskID, AgentID: agent, Token: g.Token, Error: "ffmpeg failed: boom\nmore"}}); r.Err != nil {
		t.Fatalf("fail %s: %v", taskID, r.Err)
	}
}

// Three failed attempts of one job block the agent from that job (and only
// that job); the grant itself refuses a blocked agent.
func TestAgentBlockedFromJobAfterThreeFailures(t *testing.T) {
	l := newLog()
	register(l, "flaky", "good")
	l.apply(&Command{Submit: job("j1", 3, 5)})
	l.apply(&Command{Submit: job("j2", 1, 5)})
	for _, id := range []string{"j1-r0", "j1-r1"} {
		failOnce(t, l, id, "flaky")
	}
	if l.s.Jobs["j1"].BlocksAgent("flaky") {
		t.Fatal("blocked after 2 failures")
	}
	failOnce(t, l, "j1-r2", "flaky")
	j := l.s.Jobs["j1"]
	if !j.BlocksAgent("flaky") || j.Failures["flaky"] != 3 || len(j.Blocked) != 1 {
		t.Fatalf("after 3 failures: blocked %v, failures %v", j.Blocked, j.Failures)
	}
	if r := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r0", AgentID: "flaky"}}); !errors.Is(r.Err, ErrNotRunnable) {
		t.Errorf("grant to a blocked agent: %v, want ErrNotRunnable", r.Err)
	}
	if r := l.apply(&Command{Grant: &GrantCmd{TaskID: "j2-r0", AgentID: "flaky"}}); r.Err != nil {
		t.Errorf("another job refused the agent: %v", r.Err)
	}
	if r := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r0", AgentID: "good"}}); r.Err != nil {
		t.Errorf("another agent refused the job: %v", r.Err)
	}
}

// Five failures in a row across jobs quarantine an agent; a success resets
// the streak; failures of a task that also failed elsewhere (a dead source)
// do not count; undrain lifts the quarantine; a restart does not.
func TestQuarantineAfterFailuresInARow(t *testing.T) {
	l := newLog()
	register(l, "bad", "other")
	for i := 0; i < 8; i++ {
		l.apply(&Command{Submit: job(fmt.Sprintf("j%d", i), 1, 5)})
	}
	for i := 0; i < 4; i++ {
		failOnce(t, l, fmt.Sprintf("j%d-r0", i), "bad")
	}
	if a := l.s.Agents["bad"]; a.FailStreak != 4 || a.State != montagev1.AgentState_AGENT_STATE_READY {
		t.Fatalf("after 4: streak %d, state %s", a.FailStreak, a.State)
	}
	// The same task then fails on another agent too: the source is to blame.
	failOnce(t, l, "j3-r0", "other")
	if a := l.s.Agents["bad"]; a.FailStreak != 3 || !l.s.Tasks["j3-r0"].SourceSuspect {
		t.Fatalf("a task that failed on two agents still counts: streak %d", a.FailStreak)
	}
	if o := l.s.Agents["other"]; o.FailStreak != 0 {
		t.Errorf("the second agent's failure of a suspect task counted: %d", o.FailStreak)
	}
	failOnce(t, l, "j3-r0", "bad") // suspect task: no count
	failOnce(t, l, "j4-r0", "bad")
	if a := l.s.Agents["bad"]; a.FailStreak != 4 {
		t.Fatalf("streak %d, want 4", a.FailStreak)
	}
	failOnce(t, l, "j5-r0", "bad")
	a := l.s.Agents["bad"]
	if a.State != montagev1.AgentState_AGENT_STATE_QUARANTINED || a.StateReason != "failed 5 tasks in a row, the last: ffmpeg failed: boom" {
		t.Fatalf("after 5 in a row: %s %q", a.State, a.StateReason)
	}
	if r := l.apply(&Command{Grant: &GrantCmd{TaskID: "j6-r0", AgentID: "bad"}}); !errors.Is(r.Err, ErrNotRunnable) {
		t.Errorf("grant to a quarantined agent: %v", r.Err)
	}
	l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "bad", Slots: 1}}})
	if l.s.Agents["bad"].State != montagev1.AgentState_AGENT_STATE_QUARANTINED {
		t.Error("re-registering lifted the quarantine")
	}
	l.apply(&Command{AgentState: &AgentStateCmd{AgentID: "bad", State: montagev1.AgentState_AGENT_STATE_READY}})
	if a := l.s.Agents["bad"]; a.State != montagev1.AgentState_AGENT_STATE_READY || a.FailStreak != 0 || a.StateReason != "" {
		t.Errorf("undrain: %s streak %d %q", a.State, a.FailStreak, a.StateReason)
	}
	// A success resets the streak.
	failOnce(t, l, "j6-r0", "bad")
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j7-r0", AgentID: "bad"}})
	l.apply(&Command{Complete: &CompleteCmd{TaskID: "j7-r0", AgentID: "bad", Token: g.Token, Result: Result{Key: "k"}}})
	if a := l.s.Agents["bad"]; a.FailStreak != 0 {
		t.Errorf("streak after a success: %d", a.FailStreak)
	}
}

// A handback (shutdown, a grant never received) counts against nobody and
// uses no attempt; the limits come from the command, as the leader set them.
func TestHandbackCountsAgainstNobody(t *testing.T) {
	l := newLog()
	register(l, "a")
	l.apply(&Command{Submit: job("j", 1, 2)})
	for i := 0; i < 4; i++ {
		g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a"}})
		l.apply(&Command{Fail: &FailCmd{TaskID: "j-r0", AgentID: "a", Token: g.Token, Error: "lost", Handback: true}})
	}
	tk := l.s.Tasks["j-r0"]
	if tk.State != montagev1.TaskState_TASK_STATE_QUEUED || tk.Attempts != 0 || l.s.Agents["a"].FailStreak != 0 || len(l.s.Jobs["j"].Failures) != 0 {
		t.Errorf("after handbacks: %s, %d attempts, streak %d, failures %v", tk.State, tk.Attempts, l.s.Agents["a"].FailStreak, l.s.Jobs["j"].Failures)
	}
	l.apply(&Command{Submit: job("k", 1, 9)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "k-r0", AgentID: "a"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "k-r0", AgentID: "a", Token: g.Token, Error: "x", BlockAfter: 1, QuarantineAfter: 1}})
	if !l.s.Jobs["k"].BlocksAgent("a") || l.s.Agents["a"].State != montagev1.AgentState_AGENT_STATE_QUARANTINED {
		t.Errorf("limits of 1 from the command not applied: blocked %v, %s", l.s.Jobs["k"].Blocked, l.s.Agents["a"].State)
	}
}

// A final failure (input that can never work) fails the job at once, with
// attempts left, and blames no agent.
func TestFinalFailureEndsTheJobAtOnce(t *testing.T) {
	l := newLog()
	register(l, "a")
	l.apply(&Command{Submit: job("j", 1, 2)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "j-r0", AgentID: "a", Token: g.Token, Error: "sources differ", Final: true, BlockAfter: 1, QuarantineAfter: 1}})
	j, a := l.s.Jobs["j"], l.s.Agents["a"]
	if j.State != montagev1.JobState_JOB_STATE_FAILED || !strings.Contains(j.Error, "sources differ") {
		t.Errorf("job after a final failure: %s %q", j.State, j.Error)
	}
	if a.FailStreak != 0 || j.BlocksAgent("a") || a.State == montagev1.AgentState_AGENT_STATE_QUARANTINED {
		t.Errorf("the agent was blamed: streak %d, blocked %v, %s", a.FailStreak, j.BlocksAgent("a"), a.State)
	}
}

func TestRemoveAgentOnlyWhenIdle(t *testing.T) {
	l := newLog()
	register(l, "a")
	l.apply(&Command{Submit: job("j", 1, 2)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a"}})
	if r := l.apply(&Command{RemoveAgent: &RemoveAgentCmd{AgentID: "a"}}); !errors.Is(r.Err, ErrAgentBusy) {
		t.Fatalf("removed an agent holding a lease: %v", r.Err)
	}
	l.apply(&Command{Fail: &FailCmd{TaskID: "j-r0", AgentID: "a", Token: g.Token, Handback: true}})
	if r := l.apply(&Command{RemoveAgent: &RemoveAgentCmd{AgentID: "a"}}); r.Err != nil || l.s.Agents["a"] != nil {
		t.Fatalf("remove idle agent: %v", r.Err)
	}
	if r := l.apply(&Command{RemoveAgent: &RemoveAgentCmd{AgentID: "a"}}); !errors.Is(r.Err, ErrAgentUnknown) {
		t.Errorf("second remove: %v", r.Err)
	}
}

// A result the store could not prove waits in VERIFYING: nothing depends
// on it yet, and the read-back decides under the lease's token.
func TestVerifyingResults(t *testing.T) {
	l := newLog()
	register(l, "a1", "a2")
	l.apply(&Command{Submit: job("j", 2, 2)})
	g0 := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a1"}})
	g1 := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r1", AgentID: "a2"}})
	for _, c := range []*CompleteCmd{
		{TaskID: "j-r0", AgentID: "a1", Token: g0.Token, Result: Result{Key: "k0", Size: 9}, Verify: true},
		{TaskID: "j-r1", AgentID: "a2", Token: g1.Token, Result: Result{Key: "k1", Size: 9}, Verify: true},
	} {
		if r := l.apply(&Command{Complete: c}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if st := l.s.Tasks["j-r0"].State; st != montagev1.TaskState_TASK_STATE_VERIFYING || len(l.s.Verifying()) != 2 {
		t.Fatalf("state %s, %d verifying", st, len(l.s.Verifying()))
	}
	if len(collect(l.s.Runnable())) != 0 {
		t.Fatal("the concat became runnable before its inputs were verified")
	}
	if r := l.apply(&Command{Verified: &VerifiedCmd{TaskID: "j-r0", Token: g0.Token + 99, OK: true}}); !errors.Is(r.Err, ErrStaleLease) {
		t.Fatalf("a read-back under another token: %v", r.Err)
	}
	l.apply(&Command{Verified: &VerifiedCmd{TaskID: "j-r0", Token: g0.Token, OK: true}})
	l.apply(&Command{Verified: &VerifiedCmd{TaskID: "j-r1", Token: g1.Token, OK: false, Error: "sha256 differs"}})
	r0, r1 := l.s.Tasks["j-r0"], l.s.Tasks["j-r1"]
	if r0.State != montagev1.TaskState_TASK_STATE_SUCCEEDED || r0.Commits != 1 || r0.Result.Key != "k0" {
		t.Fatalf("verified task: %s, %d commits, %+v", r0.State, r0.Commits, r0.Result)
	}
	if r1.State != montagev1.TaskState_TASK_STATE_QUEUED || r1.Attempts != 1 || r1.FailCounts["a2"] != 1 || r1.Result != nil ||
		!strings.Contains(r1.Error, "sha256 differs") {
		t.Fatalf("refused task: %+v", r1)
	}
	if ids := collect(l.s.Runnable()); len(ids) != 1 || ids[0] != "j-r1" {
		t.Fatalf("runnable after the refusal: %v", ids)
	}
	if r := l.apply(&Command{Verified: &VerifiedCmd{TaskID: "j-r1", Token: g1.Token, OK: true}}); !errors.Is(r.Err, ErrStaleLease) {
		t.Fatalf("a second read-back report: %v", r.Err)
	}
	// A job canceled while a result is verified cancels that task too.
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r1", AgentID: "a1"}})
	l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-r1", AgentID: "a1", Token: g.Token, Result: Result{Key: "k"}, Verify: true}})
	l.apply(&Command{Cancel: &CancelCmd{JobID: "j"}})
	if st := l.s.Tasks["j-r1"].State; st != montagev1.TaskState_TASK_STATE_CANCELED || len(l.s.Verifying()) != 0 {
		t.Fatalf("after cancel: %s, %d verifying", st, len(l.s.Verifying()))
	}
}

func collect(seq func(func(*Task) bool)) []string {
	var out []string
	for t := range seq {
		out = append(out, t.ID)
	}
	return out
}
