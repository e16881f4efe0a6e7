package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/auth"
)

// authInterceptor checks every call's bearer token before its handler runs:
// the operator token for jobs and cluster calls, the join token for
// Register, and an agent's own credential for its other calls, which may
// only concern that agent.
type authInterceptor struct {
	tokens auth.Tokens
	// hashOf gives the credential hash the replicated state holds for an agent.
	hashOf func(agentID string) string
}

func bearer(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// cookieToken is the console's token from its cookie, for a call that
// proves it came from a script of this origin: the Connect protocol header,
// which a cross-site form or a simple request cannot set.
func cookieToken(h http.Header) string {
	if h.Get("Connect-Protocol-Version") == "" {
		return ""
	}
	r := http.Request{Header: http.Header{"Cookie": h.Values("Cookie")}}
	c, err := r.Cookie(auth.SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// readOnly are the operator calls a viewer may make.
var readOnly = map[string]bool{
	"/montage.v1.JobService/GetJob": true, "/montage.v1.JobService/ListJobs": true, "/montage.v1.JobService/WatchJob": true,
	"/montage.v1.JobService/GetOutputURL": true, "/montage.v1.ClusterService/GetStatus": true, "/montage.v1.ClusterService/ListAgents": true,
	"/montage.v1.MontageService/ListMontages": true, "/montage.v1.MontageService/GetMontage": true,
	"/montage.v1.HighlightService/ListHighlights": true, "/montage.v1.HighlightService/ListFeeds": true,
	"/montage.v1.ScheduleService/ListSchedules": true,
}

type agentScoped interface{ GetAgentId() string }

func (a authInterceptor) check(procedure string, h http.Header, msg any) error {
	b := bearer(h)
	switch {
	case procedure == "/montage.v1.AgentService/Register":
		// The join token, or the agent's own credential; the handler then
		// checks that an id already registered presents its own secret.
		if err := a.tokens.CheckJoin(b); err != nil {
			// An enrolment token travels in the request; the handler spends
			// it through raft (or refuses it with Unauthenticated).
			if r, ok := msg.(interface{ GetEnrollToken() string }); ok && r.GetEnrollToken() != "" {
				return nil
			}
			if _, cerr := a.tokens.CheckAgent(b, a.hashOf); cerr != nil {
				return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: Register needs the agent join token", err))
			}
		}
	case strings.HasPrefix(procedure, "/montage.v1.AgentService/"):
		id, err := a.tokens.CheckAgent(b, a.hashOf)
		if err != nil {
			return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: agent calls need the credential Register returned", err))
		}
		if m, ok := msg.(agentScoped); ok && id != "" && m.GetAgentId() != id {
			return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: credential of agent %s used for agent %s", auth.ErrForbidden, id, m.GetAgentId()))
		}
	default:
		if b == "" {
			b = cookieToken(h)
		}
		switch a.tokens.Role(b) {
		case "operator":
		case "viewer":
			if !readOnly[procedure] {
				return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w: the viewer token only reads; sign in with the operator token", auth.ErrForbidden))
			}
		default:
			return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: set MONTAGE_TOKEN to the operator token", auth.ErrUnauthenticated))
		}
	}
	return nil
}

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := a.check(req.Spec().Procedure, req.Header(), req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := a.check(conn.Spec().Procedure, conn.RequestHeader(), nil); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
