package api

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"connectrpc.com/connect"
)

// forwardedHeader marks a request one coordinator passed to another, so a
// stale view of who leads can never bounce a request around.
const forwardedHeader = "X-Montage-Forwarded-By"

// forwarder sends API calls that reach a follower on to the leader, so any
// coordinator serves any call (as Nomad servers forward to theirs). Calls
// travel over h2c, which carries Connect, gRPC and gRPC-Web, streams too.
type forwarder struct {
	mu      sync.Mutex
	proxies map[string]*httputil.ReverseProxy
	tr      *http.Transport
	log     *slog.Logger
}

func newForwarder(tlsCfg *tls.Config, log *slog.Logger) *forwarder {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true) // http:// peers: h2c
	p.SetHTTP2(true)            // https:// peers: h2 over TLS
	return &forwarder{log: log, proxies: map[string]*httputil.ReverseProxy{}, tr: &http.Transport{Protocols: p, TLSClientConfig: tlsCfg}}
}

func (f *forwarder) proxy(target string) (*httputil.ReverseProxy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.proxies[target]; p != nil {
		return p, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
		},
		Transport:     f.tr,
		FlushInterval: -1, // stream WatchJob events as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			unavailable(f.log, w, r, fmt.Errorf("leader %s unreachable: %w", target, err))
		},
	}
	f.proxies[target] = p
	return p, nil
}

// Forward wraps the API handlers: the leader serves calls itself, a
// follower passes them to the leader.
func (s *Server) Forward(next http.Handler) http.Handler {
	f := newForwarder(s.cfg.PeerTLS, s.log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// GetStatus is answered by the node asked: its own view of raft.
		// Agent discovery needs the leader's view of who calls.
		leaders := strings.HasPrefix(r.URL.Path, "/montage.v1.") || r.URL.Path == "/sd/agents"
		if !leaders || s.node.IsLeader() || r.URL.Path == "/montage.v1.ClusterService/GetStatus" {
			next.ServeHTTP(w, r)
			return
		}
		if by := r.Header.Get(forwardedHeader); by != "" {
			unavailable(s.log, w, r, fmt.Errorf("forwarded by %s but %s does not lead either; retry", by, s.node.ID))
			return
		}
		target := s.node.LeaderAPI()
		if target == "" {
			unavailable(s.log, w, r, fmt.Errorf("%s knows of no leader right now (election in progress?); retry", s.node.ID))
			return
		}
		p, err := f.proxy(target)
		if err != nil {
			unavailable(s.log, w, r, fmt.Errorf("leader address %q: %w", target, err))
			return
		}
		r.Header.Set(forwardedHeader, s.node.ID)
		p.ServeHTTP(w, r)
	})
}

var errorWriter = connect.NewErrorWriter()

// unavailable refuses a call for now in the caller's own protocol, so that
// montagectl and gRPC clients show why (and retry), and logs it: a
// forward that keeps failing is a cluster problem an operator must see.
func unavailable(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	log.Warn("cannot forward a call to the leader", "path", r.URL.Path, "err", err)
	if errorWriter.IsSupported(r) {
		_ = errorWriter.Write(w, r, connect.NewError(connect.CodeUnavailable, err))
		return
	}
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}
