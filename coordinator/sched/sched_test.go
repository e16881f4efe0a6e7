package sched

import (
	"reflect"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func state(t *testing.T) *fsm.State {
	t.Helper()
	s := fsm.New()
	idx := uint64(0)
	apply := func(c *fsm.Command) fsm.Response {
		idx++
		c.At = time.Unix(int64(idx), 0)
		r := s.Apply(idx, c)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	for _, a := range []string{"ready", "drain"} {
		apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: a, Slots: 1}}})
	}
	s.Agents["drain"].State = montagev1.AgentState_AGENT_STATE_DRAINING
	s.Reindex()
	submit := func(id string, prio int32, secs ...float64) {
		c := &fsm.SubmitCmd{Job: &fsm.Job{ID: id, Priority: prio}}
		var deps []string
		for i, d := range secs {
			tid := id + "-r" + string(rune('a'+i))
			c.Tasks = append(c.Tasks, &fsm.Task{ID: tid, Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: d, MaxAttempts: 3})
			deps = append(deps, tid)
		}
		c.Tasks = append(c.Tasks, &fsm.Task{ID: id + "-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, DependsOn: deps, MaxAttempts: 3})
		apply(&fsm.Command{Submit: c})
	}
	submit("old", 0, 10, 30, 20)
	submit("new", 0, 50)
	submit("urgent", 5, 5)
	// old-rb is leased already; it must not be picked again.
	apply(&fsm.Command{Grant: &fsm.GrantCmd{TaskID: "old-rb", AgentID: "ready"}})
	return s
}

func TestPickOrder(t *testing.T) {
	s := state(t)
	cases := []struct {
		name  string
		agent string
		n     int
		want  []string
	}{
		{"priority first, then age, longest work first within a job", "ready", 10, []string{"urgent-ra", "old-rc", "old-ra", "new-ra"}},
		{"limited by free slots", "ready", 2, []string{"urgent-ra", "old-rc"}},
		{"no slots", "ready", 0, nil},
		{"draining agent gets nothing", "drain", 5, nil},
		{"unknown agent gets nothing", "ghost", 5, nil},
	}
	for _, c := range cases {
		if got := Pick(s, Ask{Agent: c.agent, Slots: c.n}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Pick = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPickSkipsFinishedJobsAndWaitsForDeps(t *testing.T) {
	s := state(t)
	s.Jobs["urgent"].State = montagev1.JobState_JOB_STATE_CANCELED
	for _, id := range []string{"new-ra"} {
		s.Tasks[id].State = montagev1.TaskState_TASK_STATE_SUCCEEDED
	}
	s.Reindex()
	got := Pick(s, Ask{Agent: "ready", Slots: 10})
	want := []string{"old-rc", "old-ra", "new-concat"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Pick = %v, want %v", got, want)
	}
}

// A task that needs a hardware encoder, yt-dlp or a font goes only to an
// agent that proved it has them, and hardware tasks stop at the agent's
// free encoder sessions.
func TestPickMatchesCapabilities(t *testing.T) {
	s := fsm.New()
	at := time.Unix(1, 0)
	s.Apply(1, &fsm.Command{At: at, Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "cpu", Slots: 4, Provides: []string{"libx264", "drawtext"}}}})
	s.Apply(2, &fsm.Command{At: at, Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "gpu", Slots: 4, GPUSessions: 2,
		Provides: []string{"libx264", "h264_nvenc", "yt-dlp"}}}})
	task := func(id string, secs float64, req ...string) *fsm.Task {
		return &fsm.Task{ID: id, Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: secs, MaxAttempts: 3, Requires: req}
	}
	s.Apply(3, &fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "hw"}, Tasks: []*fsm.Task{
		task("hw-a", 40, "h264_nvenc"), task("hw-b", 30, "h264_nvenc"), task("hw-c", 20, "h264_nvenc", "yt-dlp"),
	}}})
	s.Apply(4, &fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "sw"}, Tasks: []*fsm.Task{
		task("sw-title", 10, "libx264", "drawtext"), task("sw-page", 9, "libx264", "yt-dlp"), task("sw-plain", 8, "libx264"),
	}}})
	cases := []struct {
		agent  string
		n, gpu int
		want   []string
	}{
		{"cpu", 10, 0, []string{"sw-title", "sw-plain"}},
		{"cpu", 10, 5, []string{"sw-title", "sw-plain"}}, // sessions do not give a CPU agent an encoder
		{"gpu", 10, 2, []string{"hw-a", "hw-b", "sw-page", "sw-plain"}},
		{"gpu", 10, 0, []string{"sw-page", "sw-plain"}},
		{"gpu", 10, 3, []string{"hw-a", "hw-b", "hw-c", "sw-page", "sw-plain"}},
	}
	for _, c := range cases {
		if got := Pick(s, Ask{Agent: c.agent, Slots: c.n, GPU: c.gpu}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Pick(%s, %d, gpu %d) = %v, want %v", c.agent, c.n, c.gpu, got, c.want)
		}
	}
	if got := Unmet(s, s.Jobs["hw"]); got != "" {
		t.Errorf("Unmet(hw) = %q with a GPU agent ready", got)
	}
	s.Agents["gpu"].State = montagev1.AgentState_AGENT_STATE_DRAINING
	if got := Unmet(s, s.Jobs["hw"]); got != "h264_nvenc" {
		t.Errorf("Unmet(hw) = %q, want h264_nvenc", got)
	}
	if got := Unmet(s, s.Jobs["sw"]); got != "yt-dlp" {
		t.Errorf("Unmet(sw) = %q, want yt-dlp", got)
	}
}

func TestChooseEncoder(t *testing.T) {
	cpu := &fsm.Agent{ID: "cpu", State: montagev1.AgentState_AGENT_STATE_READY, Provides: []string{"libx264", "libx265"}}
	nv := &fsm.Agent{ID: "nv", State: montagev1.AgentState_AGENT_STATE_READY, GPUSessions: 3, Provides: []string{"libx264", "h264_nvenc", "hevc_nvenc"}}
	va := &fsm.Agent{ID: "va", State: montagev1.AgentState_AGENT_STATE_READY, GPUSessions: 1, Provides: []string{"libx264", "h264_vaapi"}}
	drained := &fsm.Agent{ID: "d", State: montagev1.AgentState_AGENT_STATE_DRAINING, GPUSessions: 8, Provides: []string{"h264_qsv"}}
	cases := []struct {
		name      string
		online    []*fsm.Agent
		codec, hw string
		want      string
	}{
		{"cpu farm auto", []*fsm.Agent{cpu}, "h264", "auto", "libx264"},
		{"no agents auto", nil, "av1", "auto", "libsvtav1"},
		{"none ignores gpus", []*fsm.Agent{nv}, "h264", "none", "libx264"},
		{"auto takes the gpu", []*fsm.Agent{cpu, nv}, "h264", "auto", "h264_nvenc"},
		{"most sessions wins", []*fsm.Agent{va, nv}, "h264", "auto", "h264_nvenc"},
		{"codec the gpu lacks", []*fsm.Agent{va}, "hevc", "auto", "libx265"},
		{"draining agents do not count", []*fsm.Agent{cpu, drained}, "h264", "auto", "libx264"},
		{"forced family waits", []*fsm.Agent{cpu}, "h264", "qsv", "h264_qsv"},
	}
	for _, c := range cases {
		if got := ChooseEncoder(c.online, c.codec, c.hw); got != c.want {
			t.Errorf("%s: ChooseEncoder = %s, want %s", c.name, got, c.want)
		}
	}
}

// A job that blocked an agent gives it nothing; a task an agent failed
// waits for another online agent that could take it, and goes back to the
// same agent only when there is none.
func TestPickHonoursBlocklistsAndAvoidsTheLastFailure(t *testing.T) {
	s := fsm.New()
	at := time.Unix(1, 0)
	for i, id := range []string{"a", "b"} {
		s.Apply(uint64(i+1), &fsm.Command{At: at, Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: id, Slots: 4, Provides: []string{"libx264"}}}})
	}
	task := func(id string, secs float64) *fsm.Task {
		return &fsm.Task{ID: id, Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: secs, MaxAttempts: 9, Requires: []string{"libx264"}}
	}
	s.Apply(3, &fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "j"}, Tasks: []*fsm.Task{task("j-1", 20), task("j-2", 10)}}})
	s.Apply(4, &fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "k"}, Tasks: []*fsm.Task{task("k-1", 5)}}})
	g := s.Apply(5, &fsm.Command{At: at, Grant: &fsm.GrantCmd{TaskID: "j-1", AgentID: "a"}})
	s.Apply(6, &fsm.Command{At: at, Fail: &fsm.FailCmd{TaskID: "j-1", AgentID: "a", Token: g.Token, Error: "x"}})

	both := func(string) bool { return true }
	onlyA := func(id string) bool { return id == "a" }
	if got, want := Pick(s, Ask{Agent: "a", Slots: 10, Online: both}), []string{"j-2", "k-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed task with b online: Pick(a) = %v, want %v", got, want)
	}
	if got, want := Pick(s, Ask{Agent: "b", Slots: 10, Online: both}), []string{"j-1", "j-2", "k-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pick(b) = %v, want %v", got, want)
	}
	if got, want := Pick(s, Ask{Agent: "a", Slots: 10, Online: onlyA}), []string{"j-1", "j-2", "k-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("failed task, nobody else online: Pick(a) = %v, want %v", got, want)
	}
	s.Jobs["j"].Blocked = []string{"a"}
	if got, want := Pick(s, Ask{Agent: "a", Slots: 10, Online: onlyA}), []string{"k-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("blocked from j: Pick(a) = %v, want %v", got, want)
	}
}

// A task expected to need more disk than the agent has left waits for
// another agent; what one pick takes counts against the next.
func TestPickRespectsFreeDisk(t *testing.T) {
	s := fsm.New()
	at := time.Unix(1, 0)
	s.Apply(1, &fsm.Command{At: at, Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "a", Slots: 4, Provides: []string{"libx264"}}}})
	task := func(id string, secs float64, bytes int64) *fsm.Task {
		return &fsm.Task{ID: id, Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: secs, MaxAttempts: 3, Requires: []string{"libx264"}, ExpectedBytes: bytes}
	}
	s.Apply(2, &fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "j"}, Tasks: []*fsm.Task{task("big", 30, 900), task("mid", 20, 400), task("small", 10, 300)}}})
	cases := []struct {
		free int64
		want []string
	}{
		{0, []string{"big", "mid", "small"}}, // unknown: no filter
		{1000, []string{"big"}},
		{800, []string{"mid", "small"}},
		{350, []string{"small"}},
		{1, nil},
	}
	for _, c := range cases {
		if got := Pick(s, Ask{Agent: "a", Slots: 10, FreeDisk: c.free}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("free %d: Pick = %v, want %v", c.free, got, c.want)
		}
	}
}

// Tasks another agent's grant is being proposed for are passed over, so
// agents asking at once get different tasks instead of racing for one.
func TestPickSkipsClaimedTasks(t *testing.T) {
	s := state(t)
	claimed := map[string]bool{"urgent-ra": true, "old-rc": true}
	got := Pick(s, Ask{Agent: "ready", Slots: 2, Skip: func(id string) bool { return claimed[id] }})
	if want := []string{"old-ra", "new-ra"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pick = %v, want %v", got, want)
	}
}

// A concat that just became runnable waits for an agent that keeps its
// job's segments, while such an agent could take it (the one that keeps
// the first segment before other keepers); after Affinity any agent takes
// it, and the waiting asker hears until when it waits.
func TestPickLeavesAFreshConcatToItsKeeper(t *testing.T) {
	s := fsm.New()
	at := time.Unix(100, 0)
	idx := uint64(0)
	apply := func(c *fsm.Command) fsm.Response {
		idx++
		c.At = at
		r := s.Apply(idx, c)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	for _, id := range []string{"keeper", "other", "third"} {
		apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: id, Slots: 2, Provides: []string{"libx264"}}}})
	}
	apply(&fsm.Command{Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "j"}, Tasks: []*fsm.Task{
		{ID: "j-r0", Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: 20, MaxAttempts: 3},
		{ID: "j-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, DependsOn: []string{"j-r0"}, MaxAttempts: 3},
		{ID: "j-r9", Type: montagev1.TaskType_TASK_TYPE_RENDER, ExpectedSeconds: 5, MaxAttempts: 3},
	}}})
	g := apply(&fsm.Command{Grant: &fsm.GrantCmd{TaskID: "j-r0", AgentID: "keeper"}})
	// The render's commit is what makes the concat runnable: 10 s later.
	at = time.Unix(110, 0)
	apply(&fsm.Command{Complete: &fsm.CompleteCmd{TaskID: "j-r0", AgentID: "keeper", Token: g.Token, Result: fsm.Result{Key: "k", Size: 1, SHA256: "x"}}})
	if got := ReadySince(s, s.Tasks["j-concat"]); !got.Equal(at) {
		t.Fatalf("ReadySince = %v, want the commit's %v", got, at)
	}

	keeps := func(job string) []string {
		if job == "j" {
			return []string{"gone", "keeper"} // an agent the state no longer knows is passed over
		}
		return nil
	}
	keepsBoth := func(job string) []string {
		if job == "j" {
			return []string{"third", "keeper"} // keeper rendered the first segment
		}
		return nil
	}
	all := func(string) bool { return true }
	notKeeper := func(id string) bool { return id != "keeper" }
	cases := []struct {
		name      string
		agent     string
		now       time.Time
		online    func(string) bool
		keeps     func(string) []string
		affinity  time.Duration
		mutate    func()
		want      []string
		waitUntil time.Time
	}{
		{"the keeper takes it", "keeper", at, all, keeps, 3 * time.Second, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"another agent leaves it while it is fresh", "other", at.Add(2 * time.Second), all, keeps, 3 * time.Second, nil, []string{"j-r9"}, at.Add(3 * time.Second)},
		{"and takes it once the affinity is over", "other", at.Add(3 * time.Second), all, keeps, 3 * time.Second, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"no waiting without an affinity", "other", at, all, keeps, 0, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"nobody keeps it", "other", at, all, func(string) []string { return nil }, 3 * time.Second, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"the keeper is offline", "other", at, notKeeper, keeps, 3 * time.Second, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"the keeper is draining", "other", at, all, keeps, 3 * time.Second, func() { s.Agents["keeper"].State = montagev1.AgentState_AGENT_STATE_DRAINING },
			[]string{"j-r9", "j-concat"}, time.Time{}},
		{"the keeper failed it", "other", at, all, keeps, 3 * time.Second, func() { s.Tasks["j-concat"].FailCounts = map[string]int{"keeper": 1} },
			[]string{"j-r9", "j-concat"}, time.Time{}},
		{"the keeper lacks what it needs", "other", at, all, keeps, 3 * time.Second, func() { s.Tasks["j-concat"].Requires = []string{"libx264"}; s.Agents["keeper"].Provides = nil },
			[]string{"j-r9", "j-concat"}, time.Time{}},
		{"the keeper is blocked from the job", "other", at, all, keeps, 3 * time.Second, func() { s.Jobs["j"].Blocked = []string{"keeper"} },
			[]string{"j-r9", "j-concat"}, time.Time{}},
		{"a keeper of later segments leaves it to the first segment's", "third", at, all, keepsBoth, 3 * time.Second, nil, []string{"j-r9"}, at.Add(3 * time.Second)},
		{"and takes it when that keeper is offline", "third", at, notKeeper, keepsBoth, 3 * time.Second, nil, []string{"j-r9", "j-concat"}, time.Time{}},
		{"while a non-keeper still waits for it", "other", at, notKeeper, keepsBoth, 3 * time.Second, nil, []string{"j-r9"}, at.Add(3 * time.Second)},
	}
	for _, c := range cases {
		s.Agents["keeper"].State, s.Agents["keeper"].Provides = montagev1.AgentState_AGENT_STATE_READY, []string{"libx264"}
		s.Tasks["j-concat"].FailCounts, s.Tasks["j-concat"].Requires, s.Jobs["j"].Blocked = nil, nil, nil
		if c.mutate != nil {
			c.mutate()
		}
		var until time.Time
		got := Pick(s, Ask{Agent: c.agent, Slots: 5, Online: c.online, Keepers: c.keeps, Affinity: c.affinity, Now: c.now,
			Waits: func(id string, u time.Time) {
				if id != "j-concat" {
					t.Errorf("%s: %s waits, not the concat", c.name, id)
				}
				until = u
			}})
		if !reflect.DeepEqual(got, c.want) || !until.Equal(c.waitUntil) {
			t.Errorf("%s: Pick = %v waiting until %v, want %v until %v", c.name, got, until, c.want, c.waitUntil)
		}
	}
}
