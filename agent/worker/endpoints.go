package worker

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// placeholder is the host API clients are built with; endpoints swaps in
// the coordinator in use for each call.
const placeholder = "coordinator.montage.invalid"

// endpoints is the list of coordinators an agent knows. Calls go to the
// current one; a connection failure or a 503 moves on to the next, and the
// caller's retry reaches it. Any coordinator serves any call (followers
// forward to the leader), so the list only needs one live member.
type endpoints struct {
	mu   sync.Mutex
	urls []*url.URL
	cur  int
	next http.RoundTripper
}

func newEndpoints(raw []string, next http.RoundTripper) (*endpoints, error) {
	e := &endpoints{next: next}
	if err := e.add(raw); err != nil {
		return nil, err
	}
	return e, nil
}

// add merges coordinator URLs in (as learned from Register).
func (e *endpoints) add(raw []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range raw {
		r = strings.TrimRight(strings.TrimSpace(r), "/")
		if r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &url.Error{Op: "coordinator address", URL: r, Err: errBadCoordinator}
		}
		dup := false
		for _, have := range e.urls {
			if have.String() == u.String() {
				dup = true
			}
		}
		if !dup {
			e.urls = append(e.urls, u)
		}
	}
	return nil
}

func (e *endpoints) current() *url.URL {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.urls[e.cur%len(e.urls)]
}

func (e *endpoints) rotate(from *url.URL) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.urls[e.cur%len(e.urls)] == from {
		e.cur = (e.cur + 1) % len(e.urls)
	}
}

func (e *endpoints) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.urls))
	for i, u := range e.urls {
		out[i] = u.String()
	}
	return out
}

// RoundTrip implements http.RoundTripper for API calls.
func (e *endpoints) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != placeholder {
		return e.next.RoundTrip(req)
	}
	u := e.current()
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = u.Scheme, u.Host
	out.URL.Path = strings.TrimRight(u.Path, "/") + req.URL.Path
	out.Host = u.Host
	resp, err := e.next.RoundTrip(out)
	if err != nil || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway {
		e.rotate(u)
	}
	return resp, err
}
