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
		if got := Pick(s, c.agent, c.n); !reflect.DeepEqual(got, c.want) {
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
	got := Pick(s, "ready", 10)
	want := []string{"old-rc", "old-ra", "new-concat"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Pick = %v, want %v", got, want)
	}
}
