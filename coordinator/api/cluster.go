package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stream-montages/montage/coordinator/auth"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// coordinatorURLs lists the API addresses of the live coordinators.
func (s *Server) coordinatorURLs() []string {
	members, _ := s.node.Members()
	var out []string
	for _, m := range members {
		if m.Alive && m.APIAddr != "" {
			out = append(out, m.APIAddr)
		}
	}
	return out
}

// GetStatus describes the raft cluster and the gossip pool.
func (s *Server) GetStatus(context.Context, *connect.Request[montagev1.GetStatusRequest]) (*connect.Response[montagev1.GetStatusResponse], error) {
	stats := s.node.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	_, leaderID := s.node.Leader()
	out := &montagev1.GetStatusResponse{
		LeaderId: leaderID, LeaderApi: s.node.LeaderAPI(), AnsweredBy: s.node.ID,
		Term: u("term"), CommitIndex: u("commit_index"), AppliedIndex: u("applied_index"), LastLogIndex: u("last_log_index"),
	}
	members, voters := s.node.Members()
	seen := map[string]bool{}
	for _, m := range members {
		seen[m.ID] = true
		out.Members = append(out.Members, &montagev1.ClusterMember{Id: m.ID, GossipAddr: m.Gossip, RaftAddr: m.RaftAddr,
			ApiAddr: m.APIAddr, Alive: m.Alive, Voter: voters[m.ID], Leader: m.ID == leaderID})
	}
	for id, v := range voters { // in raft but unknown to gossip (not joined yet, or long gone)
		if !seen[id] {
			out.Members = append(out.Members, &montagev1.ClusterMember{Id: id, Voter: v, Leader: id == leaderID})
		}
	}
	sort.Slice(out.Members, func(a, b int) bool { return out.Members[a].Id < out.Members[b].Id })
	return connect.NewResponse(out), nil
}

// RemoveNode takes a coordinator out of raft.
func (s *Server) RemoveNode(_ context.Context, req *connect.Request[montagev1.RemoveNodeRequest]) (*connect.Response[montagev1.RemoveNodeResponse], error) {
	id := req.Msg.GetNodeId()
	if id == "" {
		return nil, invalid("node_id", "is required")
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	if id == s.node.ID {
		return nil, invalid("node_id", "%s is the leader; stop it and remove it from another coordinator", id)
	}
	_, voters := s.node.Members()
	if _, ok := voters[id]; !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %q is not in the raft configuration", id))
	}
	if err := s.node.RemoveServer(id); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			return nil, s.notLeader(err)
		}
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	s.log.Info("coordinator removed from raft by an operator", "node", id)
	return connect.NewResponse(&montagev1.RemoveNodeResponse{}), nil
}

// ListAgents lists registered agents with their load and last contact.
func (s *Server) ListAgents(context.Context, *connect.Request[montagev1.ListAgentsRequest]) (*connect.Response[montagev1.ListAgentsResponse], error) {
	if err := s.requireReady(); err != nil {
		return nil, err
	}
	out := &montagev1.ListAgentsResponse{}
	s.node.View(func(st *fsm.State) {
		inUse := map[string]int32{}
		tasks := map[string][]string{}
		for _, t := range st.LeasedTasks() {
			inUse[t.AgentID]++
			tasks[t.AgentID] = append(tasks[t.AgentID], t.ID)
		}
		for _, a := range st.Agents {
			p := agentProto(a)
			p.SlotsInUse = inUse[a.ID]
			p.CurrentTasks = tasks[a.ID]
			p.IdleReason = s.idleReason(a)
			out.Agents = append(out.Agents, p)
		}
	})
	for _, a := range out.Agents {
		if t, ok := s.lead.LastSeen(a.GetId()); ok {
			a.LastSeen = timestamppb.New(t)
		}
		a.Status = s.statuses.get(a.GetId())
	}
	sort.Slice(out.Agents, func(a, b int) bool { return out.Agents[a].GetId() < out.Agents[b].GetId() })
	return connect.NewResponse(out), nil
}

// DrainAgent drains or readies an agent.
func (s *Server) DrainAgent(_ context.Context, req *connect.Request[montagev1.DrainAgentRequest]) (*connect.Response[montagev1.DrainAgentResponse], error) {
	if err := checkAgentID(req.Msg.GetAgentId()); err != nil {
		return nil, err
	}
	st := montagev1.AgentState_AGENT_STATE_READY
	if req.Msg.GetDrain() {
		st = montagev1.AgentState_AGENT_STATE_DRAINING
	}
	if _, err := s.apply(&fsm.Command{AgentState: &fsm.AgentStateCmd{AgentID: req.Msg.GetAgentId(), State: st}}); err != nil {
		return nil, err
	}
	var out *montagev1.Agent
	s.node.View(func(state *fsm.State) { out = agentProto(state.Agents[req.Msg.GetAgentId()]) })
	s.log.Info("agent state set by an operator", "agent", req.Msg.GetAgentId(), "state", st.String())
	return connect.NewResponse(&montagev1.DrainAgentResponse{Agent: out}), nil
}

// RemoveAgent forgets an agent that holds no lease.
func (s *Server) RemoveAgent(_ context.Context, req *connect.Request[montagev1.RemoveAgentRequest]) (*connect.Response[montagev1.RemoveAgentResponse], error) {
	id := req.Msg.GetAgentId()
	if err := checkAgentID(id); err != nil {
		return nil, err
	}
	resp, err := s.node.Apply(&fsm.Command{At: s.clock.Now().UTC(), RemoveAgent: &fsm.RemoveAgentCmd{AgentID: id}})
	if err != nil {
		return nil, s.notLeader(err)
	}
	if errors.Is(resp.Err, fsm.ErrAgentBusy) {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("%w: drain it (montagectl agent drain %s) and remove it when its work is done, or stop it", resp.Err, id))
	}
	if resp.Err != nil {
		return nil, toConnect(resp.Err)
	}
	s.lead.Forget(id)
	s.statuses.forget(id)
	s.kept.forget(id)
	s.log.Info("agent removed by an operator", "agent", id)
	return connect.NewResponse(&montagev1.RemoveAgentResponse{}), nil
}

// EnrollAgent makes a one-time token for a new PC: 32 random bytes, of
// which only the hash goes through raft. It is spent by the Register that
// presents it, or void once it expires.
func (s *Server) EnrollAgent(_ context.Context, req *connect.Request[montagev1.EnrollAgentRequest]) (*connect.Response[montagev1.EnrollAgentResponse], error) {
	m := req.Msg
	ttl := 24 * time.Hour
	if sec := m.GetExpiresSeconds(); sec != 0 {
		if math.IsNaN(sec) || sec < 60 || sec > 30*24*3600 {
			return nil, invalid("expires_seconds", "must be between 60 s and 30 days, got %v", sec)
		}
		ttl = time.Duration(sec * float64(time.Second))
	}
	if n := m.GetName(); len(n) > 64 || strings.ContainsFunc(n, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, invalid("name", "must be at most 64 printable characters")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	token := "enroll-" + hex.EncodeToString(b)
	exp := s.clock.Now().Add(ttl).UTC()
	if _, err := s.apply(&fsm.Command{Enroll: &fsm.EnrollCmd{Hash: auth.CredentialHash(token), Name: m.GetName(), ExpiresAt: exp}}); err != nil {
		return nil, err
	}
	s.log.Info("enrolment token made", "name", m.GetName(), "expires", exp)
	return connect.NewResponse(&montagev1.EnrollAgentResponse{Token: token, ExpiresAt: timestamppb.New(exp)}), nil
}
