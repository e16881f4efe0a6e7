package api

import (
	"context"
	"fmt"
	"math"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/schedule"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// openAt reports whether an agent's schedule lets it work at t.
func openAt(a *fsm.Agent, t time.Time) bool { return schedule.Allows(a.Schedule, a.TimeZone, t) }

// idleReason says why an agent takes no new work now (empty: it does).
func (s *Server) idleReason(a *fsm.Agent) string {
	switch a.State {
	case montagev1.AgentState_AGENT_STATE_DRAINING:
		return "drained"
	case montagev1.AgentState_AGENT_STATE_QUARANTINED:
		return "quarantined"
	}
	if !openAt(a, s.clock.Now()) {
		tz := a.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		return fmt.Sprintf("outside its schedule (%s, %s)", a.Schedule, tz)
	}
	if st := s.statuses.get(a.ID); st.GetPaused() != "" {
		return st.GetPaused()
	}
	return ""
}

// SetAgentSchedule sets when an agent may take work.
func (s *Server) SetAgentSchedule(_ context.Context, req *connect.Request[montagev1.SetAgentScheduleRequest]) (*connect.Response[montagev1.SetAgentScheduleResponse], error) {
	m := req.Msg
	if err := checkAgentID(m.GetAgentId()); err != nil {
		return nil, err
	}
	sc, err := schedule.Parse(m.GetSchedule())
	if err != nil {
		return nil, invalid("schedule", "%v", err)
	}
	g := m.GetGraceSeconds()
	if math.IsNaN(g) || g < 0 || g > 24*3600 {
		return nil, invalid("grace_seconds", "must be between 0 (finish running work) and 86400, got %v", g)
	}
	if _, err := s.apply(&fsm.Command{Schedule: &fsm.ScheduleCmd{AgentID: m.GetAgentId(), Schedule: sc.String(),
		Grace: time.Duration(g * float64(time.Second))}}); err != nil {
		return nil, err
	}
	var out *montagev1.Agent
	s.node.View(func(st *fsm.State) {
		if a := st.Agents[m.GetAgentId()]; a != nil {
			out = agentProto(a)
			out.IdleReason = s.idleReason(a)
		}
	})
	s.log.Info("agent schedule set", "agent", m.GetAgentId(), "schedule", sc.String(), "grace", g)
	return connect.NewResponse(&montagev1.SetAgentScheduleResponse{Agent: out}), nil
}
