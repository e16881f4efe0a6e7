package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func applyCmd(t *testing.T, m *machine, idx uint64, c *fsm.Command) fsm.Response {
	t.Helper()
	c.At = time.Unix(int64(idx), 0)
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := m.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: b}).(fsm.Response)
	if r.Err != nil {
		t.Fatalf("apply %d: %v", idx, r.Err)
	}
	return r
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func submitOne(id string, requires ...string) *fsm.Command {
	return &fsm.Command{Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: id}, Tasks: []*fsm.Task{{
		ID: id + "-r0", Type: montagev1.TaskType_TASK_TYPE_RENDER, MaxAttempts: 1, Requires: requires}}}}
}

// A waiting lease poll wakes only for work its agent could take or for a
// change of its own leases, not on every apply.
func TestLeasePollsWakeOnlyForTheirWork(t *testing.T) {
	m := newMachine()
	applyCmd(t, m, 1, &fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "cpu", Slots: 1, Provides: []string{"libx264"}}}})
	applyCmd(t, m, 2, &fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "gpu", Slots: 1, Provides: []string{"libx264", "h264_nvenc"}}}})
	cpu, cancelCPU := m.Wait("cpu", []string{"libx264"})
	defer cancelCPU()
	gpu, cancelGPU := m.Wait("gpu", []string{"libx264", "h264_nvenc"})
	defer cancelGPU()

	applyCmd(t, m, 3, submitOne("hw", "h264_nvenc"))
	if closed(cpu) {
		t.Fatal("a CPU agent's poll woke for a hardware-encoder task")
	}
	if !closed(gpu) {
		t.Fatal("the GPU agent's poll did not wake for its task")
	}
	// The grant of that task to gpu changes nothing cpu could take.
	gpu, cancelGPU2 := m.Wait("gpu", []string{"libx264", "h264_nvenc"})
	defer cancelGPU2()
	g := applyCmd(t, m, 4, &fsm.Command{Grant: &fsm.GrantCmd{TaskID: "hw-r0", AgentID: "gpu"}})
	if closed(cpu) || closed(gpu) {
		t.Fatal("a grant woke waiting polls")
	}
	// Its expiry ends gpu's lease: gpu looks again (the task is failed for
	// good with one attempt, so it is no one's work).
	applyCmd(t, m, 5, &fsm.Command{Expire: &fsm.ExpireCmd{TaskID: "hw-r0", Token: g.Token}})
	if closed(cpu) || !closed(gpu) {
		t.Fatalf("lease end: cpu woken %v, gpu woken %v (want false, true)", closed(cpu), closed(gpu))
	}
	applyCmd(t, m, 6, submitOne("sw", "libx264"))
	if !closed(cpu) {
		t.Fatal("the CPU agent's poll did not wake for software work")
	}
	// Leadership changes wake everyone.
	w, cancel := m.Wait("cpu", nil)
	defer cancel()
	m.wakeAll()
	if !closed(w) {
		t.Fatal("wakeAll left a poll waiting")
	}
}
