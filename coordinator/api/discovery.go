package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// services are the Connect services a coordinator serves, as gRPC
// reflection and health checks name them.
var services = []string{
	montagev1connect.JobServiceName,
	montagev1connect.AgentServiceName,
	montagev1connect.ClusterServiceName,
	montagev1connect.HighlightServiceName,
	montagev1connect.ScheduleServiceName,
	montagev1connect.MontageServiceName,
}

// Ready reports whether this node can answer: it leads and has replayed
// its log, or it follows a known leader (its calls are forwarded there).
func (s *Server) Ready() bool {
	if s.node.IsLeader() {
		return s.node.Ready()
	}
	return s.node.LeaderAPI() != ""
}

// Check answers gRPC health checks: serving when Ready.
func (s *Server) Check(_ context.Context, r *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if r.Service != "" && !slices.Contains(services, r.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", r.Service))
	}
	if s.Ready() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
}

// mountStandard adds gRPC health and server reflection, so that
// grpc-health-probe, grpcurl and buf curl work without the schema files,
// and Prometheus service discovery.
func (s *Server) mountStandard(mux *http.ServeMux) {
	mux.Handle(grpchealth.NewHandler(s))
	reflector := grpcreflect.NewStaticReflector(append(slices.Clone(services), grpchealth.HealthV1ServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.HandleFunc("GET /sd/agents", s.sdAgents)
	mux.HandleFunc("GET /sd/coordinators", s.sdCoordinators)
}

// targetGroup is one entry of Prometheus's HTTP service discovery.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func writeTargets(w http.ResponseWriter, groups []targetGroup) {
	if groups == nil {
		groups = []targetGroup{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(groups)
}

// sdAgents lists the agents that serve metrics and called the leader
// recently (followers forward it): a stopped PC leaves within the online
// window. Labels say which PC it is and what it can do.
func (s *Server) sdAgents(w http.ResponseWriter, _ *http.Request) {
	var groups []targetGroup
	s.node.View(func(st *fsm.State) {
		for _, a := range st.Agents {
			if a.MetricsAddr == "" || !s.lead.Online(a.ID) {
				continue
			}
			caps := capsOf(a)
			groups = append(groups, targetGroup{Targets: []string{a.MetricsAddr}, Labels: map[string]string{
				"agent": agentLabel(a), "agent_id": a.ID, "os": caps.GetOs(), "arch": caps.GetArch(), "gpu": caps.GetGpuName(),
				"encoders": strings.Join(caps.GetEncoders(), ","), "state": enumLabel(a.State, "AGENT_STATE_"),
			}})
		}
	})
	sort.Slice(groups, func(i, j int) bool { return groups[i].Labels["agent_id"] < groups[j].Labels["agent_id"] })
	writeTargets(w, groups)
}

// sdCoordinators lists the live coordinators (this node's gossip view):
// their API listeners serve /metrics.
func (s *Server) sdCoordinators(w http.ResponseWriter, _ *http.Request) {
	members, voters := s.node.Members()
	var groups []targetGroup
	for _, m := range members {
		if !m.Alive || m.APIAddr == "" {
			continue
		}
		u, err := url.Parse(m.APIAddr)
		if err != nil || u.Host == "" {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		labels := map[string]string{"coordinator": m.ID, "voter": fmt.Sprint(voters[m.ID])}
		if u.Scheme == "https" {
			labels["__scheme__"] = "https"
		}
		groups = append(groups, targetGroup{Targets: []string{host}, Labels: labels})
	}
	writeTargets(w, groups)
}
