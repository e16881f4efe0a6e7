package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func addr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// State written through raft survives a restart of the node, from the log
// and from a snapshot.
func TestNodeRestartKeepsState(t *testing.T) {
	dir, raftAddr := t.TempDir(), addr(t)
	open := func() *Node {
		n, err := Open(Config{DataDir: dir, RaftAddr: raftAddr, Bootstrap: true, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.WaitLeader(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	id := n.ID
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	resp, err := n.Apply(&fsm.Command{At: at, Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: "j1"}, Tasks: []*fsm.Task{{ID: "j1-r000", MaxAttempts: 1}}}})
	if err != nil || resp.Err != nil {
		t.Fatalf("apply: %v %v", err, resp.Err)
	}
	changed := n.Changed()
	if _, err := n.Apply(&fsm.Command{At: at, Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "a1"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed() was not closed by an apply")
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if _, err := n.Apply(&fsm.Command{At: at, Cancel: &fsm.CancelCmd{JobID: "j1"}}); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	n = open()
	defer n.Shutdown()
	if n.ID != id {
		t.Errorf("node id changed across restart: %s -> %s", id, n.ID)
	}
	var state montagev1.JobState
	var agents int
	n.View(func(s *fsm.State) {
		if j := s.Jobs["j1"]; j != nil {
			state = j.State
		}
		agents = len(s.Agents)
	})
	if state != montagev1.JobState_JOB_STATE_CANCELED || agents != 1 {
		t.Fatalf("after restart: job %s, %d agents; want canceled and 1", state, agents)
	}
	if _, err := Open(Config{DataDir: dir, NodeID: "someone-else", RaftAddr: addr(t)}); err == nil {
		t.Error("opened another node's data dir under a different id")
	}
}
