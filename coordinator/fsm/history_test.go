package fsm

import (
	"fmt"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// history is a raft log that touches every kind of record: agents (one
// drained, one quarantined-to-be), jobs in every state (succeeded and
// finalized, succeeded and purged, failed, canceled, running, queued,
// being deleted), failure books, cache entries and idempotency keys. The
// golden snapshots were written from it, and a state built by applying it
// now must equal what they restore to.
func history() []*Command {
	var out []*Command
	add := func(c *Command) { out = append(out, c) }
	for i, id := range []string{"a1", "a2", "a3"} {
		add(&Command{Register: &RegisterCmd{Agent: &Agent{ID: id, Name: "pc-" + id, Slots: i + 1,
			Capabilities: []byte{0x0a, byte(i)}, Labels: map[string]string{"room": "den"},
			Provides: []string{"libx264", "yt-dlp"}, CredentialHash: fmt.Sprintf("%064d", i)}}})
	}
	add(&Command{AgentState: &AgentStateCmd{AgentID: "a3", State: montagev1.AgentState_AGENT_STATE_DRAINING}})
	for n := 0; n < 7; n++ {
		id := fmt.Sprintf("job%d", n)
		c := job(id, 2, 2)
		c.Job.Spec = []byte(fmt.Sprintf("\x0a\x05spec%d", n))
		c.Job.Profile = []byte{0x10, byte(n)}
		c.Job.Priority = int32(n % 3)
		c.Job.Sources = []string{"https://example.com/a.mp4", "https://example.com/b.mp4"}
		c.Job.Warnings = []string{"warn " + id}
		c.IdempotencyKey = "key-" + id
		for i, t := range c.Tasks {
			t.Requires = []string{"libx264"}
			t.ExpectedBytes = int64(1000 * (i + 1))
			if t.Type == montagev1.TaskType_TASK_TYPE_RENDER {
				t.CacheKey = fmt.Sprintf("plan-%d", i)
				t.Role = "highlight"
				t.Render = &RenderInput{Start: 1.5, Duration: 4, Title: "t", FadeIn: true, SnapEnd: true}
			}
		}
		add(&Command{Submit: c})
	}
	add(&Command{CacheAdd: &CacheEntry{Key: "plan-0-x", Plan: "plan-0", Identity: "etag:1", Object: "cache/plan-0-x.mp4", Size: 10, SHA256: "ab", Duration: 4, Source: []byte{1}}})
	return out
}

// historyTokens replays the grants and reports of the history: the tokens
// are raft indexes, so they are filled in as the log is applied.
type historyLog struct {
	s   *State
	idx uint64
}

func (h *historyLog) apply(c *Command) Response {
	h.idx++
	c.At = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(time.Duration(h.idx) * time.Second)
	return h.s.Apply(h.idx, c)
}

func (h *historyLog) run(taskID, agentID string, outcome string) {
	g := h.apply(&Command{Grant: &GrantCmd{TaskID: taskID, AgentID: agentID}})
	if g.Err != nil {
		panic(fmt.Sprintf("history grant %s: %v", taskID, g.Err))
	}
	switch outcome {
	case "ok":
		h.apply(&Command{Complete: &CompleteCmd{TaskID: taskID, AgentID: agentID, Token: g.Token, Result: Result{
			Key: taskID + ".mp4", Size: 100, SHA256: "cd", Duration: 4, Source: []byte{2},
			Outputs: map[string]string{"srt": taskID + ".srt"}, OutputSums: map[string]Checksum{"srt": {Size: 3, SHA256: "ef"}}}}})
	case "fail":
		h.apply(&Command{Fail: &FailCmd{TaskID: taskID, AgentID: agentID, Token: g.Token, Error: "ffmpeg exited 1"}})
	case "expire":
		h.apply(&Command{Expire: &ExpireCmd{TaskID: taskID, Token: g.Token}})
	case "hold":
	}
}

// buildHistory applies the history and the work done on its jobs.
func buildHistory() *State {
	h := &historyLog{s: New()}
	for _, c := range history() {
		h.apply(c)
	}
	// job0: succeeded, finalized and purged. job1: succeeded, finalized.
	for _, id := range []string{"job0", "job1"} {
		h.run(id+"-r0", "a1", "ok")
		h.run(id+"-r1", "a2", "ok")
		h.run(id+"-concat", "a1", "ok")
		h.apply(&Command{Finalize: &FinalizeCmd{JobID: id, Outputs: map[string]string{"montage": "jobs/" + id + "/montage.mp4"}}})
	}
	h.apply(&Command{PurgeSegments: &JobCmd{JobID: "job0"}})
	// job2: failed after its attempts, with a1 blocked... (limit 1 here).
	h.run("job2-r0", "a1", "fail")
	h.run("job2-r0", "a2", "expire")
	// job3: canceled while running. job4: running, one lease held.
	h.run("job3-r0", "a1", "ok")
	h.apply(&Command{Cancel: &CancelCmd{JobID: "job3"}})
	h.run("job4-r0", "a2", "hold")
	h.run("job4-r1", "a1", "fail")
	// job5: being deleted by retention. job6: queued.
	h.apply(&Command{Cancel: &CancelCmd{JobID: "job5"}})
	h.apply(&Command{MarkDeleting: &JobCmd{JobID: "job5"}})
	h.apply(&Command{Fail: &FailCmd{TaskID: "job4-r1", AgentID: "a1", Token: 1, Error: "stale"}})
	return h.s
}
