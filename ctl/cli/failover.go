package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// parseAddrs reads --addr / MONTAGE_ADDR: one coordinator URL or several,
// comma-separated.
func parseAddrs(v string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--addr %q: each coordinator is an http:// or https:// URL with a host, e.g. http://coord1:7400,http://coord2:7400", s)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--addr: no coordinator given")
	}
	return out, nil
}

// failover sends API calls to the coordinator that answered last and, when
// one cannot be reached at all, to the next, as agents do with several
// -coordinator addresses. Any coordinator serves any call (followers
// forward to the leader), so which one answers does not matter. Calls to
// other hosts (presigned downloads) pass through.
type failover struct {
	addrs []*url.URL
	next  http.RoundTripper

	mu  sync.Mutex
	cur int
}

func (f *failover) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(f.addrs) < 2 || r.URL.Host != f.addrs[0].Host || r.URL.Scheme != f.addrs[0].Scheme {
		return f.next.RoundTrip(r)
	}
	f.mu.Lock()
	start := f.cur
	f.mu.Unlock()
	var last error
	for i := range f.addrs {
		idx := (start + i) % len(f.addrs)
		req := r.Clone(r.Context())
		req.URL.Scheme, req.URL.Host, req.Host = f.addrs[idx].Scheme, f.addrs[idx].Host, f.addrs[idx].Host
		if r.Body != nil && r.GetBody != nil {
			b, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = b
		} else if r.Body != nil && i > 0 {
			break // a body that cannot be sent again
		}
		resp, err := f.next.RoundTrip(req)
		if err == nil {
			f.mu.Lock()
			f.cur = idx
			f.mu.Unlock()
			return resp, nil
		}
		if r.Context().Err() != nil {
			return nil, err
		}
		last = err
	}
	return nil, last
}
