package sources

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
)

// RangeProxy sits between ffmpeg and a media server (a file, or an HLS
// playlist and the segments it names relative to itself) and turns ffmpeg's
// open-ended range requests ("bytes=N-") into bounded ones of at most
// ChunkSize bytes, fetched only as ffmpeg reads. ffmpeg opens a file at its
// start to read the header, then seeks to the cut; against the server
// directly, each open-ended request makes the server push megabytes into
// socket buffers that ffmpeg then throws away. Through the proxy, with small
// socket buffers on its side, what is fetched stays close to what is used.
type RangeProxy struct {
	Client *http.Client
	// ChunkSize is the first request's size; each further chunk of the same
	// read doubles, up to MaxChunk, so a long sequential read needs few
	// round trips while a read that stops early (a probe, a seek) wastes
	// little.
	ChunkSize, MaxChunk int64

	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	targets map[string]target
}

type target struct {
	url     string
	name    string // the last path element of url, as the proxy URL ends
	headers map[string]string
}

// proxyBuffer bounds the kernel's buffering between proxy and ffmpeg.
const proxyBuffer = 64 << 10

// StartRangeProxy listens on loopback.
func StartRangeProxy(client *http.Client) (*RangeProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("range proxy: %w", err)
	}
	p := &RangeProxy{Client: client, ChunkSize: 128 << 10, MaxChunk: 256 << 10, ln: ln, targets: map[string]target{}}
	p.srv = &http.Server{Handler: p, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(proxyBuffer)
		}
		return ctx
	}}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *RangeProxy) Close() error { return p.srv.Close() }

// Register returns the loopback URL ffmpeg should read instead of origin,
// and a function that forgets it. The URL is unguessable, so another local
// process cannot use the proxy to reach what the agent can.
func (p *RangeProxy) Register(origin string, headers map[string]string) (string, func()) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	name := ""
	if u, err := url.Parse(origin); err == nil {
		name = path.Base(u.Path)
	}
	if name == "." || name == "/" {
		name = "media"
	}
	p.mu.Lock()
	p.targets[id] = target{url: origin, name: name, headers: headers}
	p.mu.Unlock()
	return "http://" + p.ln.Addr().String() + "/" + id + "/" + name, func() {
		p.mu.Lock()
		delete(p.targets, id)
		p.mu.Unlock()
	}
}

// ParseRangeStart reads the first byte of a "bytes=N-" or "bytes=N-M"
// header; 0 when absent. ok is false for forms the proxy does not serve.
func ParseRangeStart(h string) (start, end int64, ok bool) {
	if h == "" {
		return 0, -1, true
	}
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	end = -1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return 0, 0, false
		}
	}
	return start, end, true
}

// ParseContentRange reads "bytes A-B/TOTAL".
func ParseContentRange(h string) (total int64, ok bool) {
	_, t, found := strings.Cut(h, "/")
	if !found || t == "*" {
		return 0, false
	}
	v, err := strconv.ParseInt(t, 10, 64)
	return v, err == nil && v >= 0
}

// Resolve maps a path under a registered URL to what the proxy fetches:
// the registered name is the origin itself (with its query); anything else
// is resolved against it as a relative reference, the way an HLS playlist's
// segment URIs are. A path-only reference keeps the origin's scheme and host,
// so the proxy never fetches from anywhere the job did not name.
func Resolve(origin, name, rest, rawQuery string) (string, error) {
	if rest == name {
		return origin, nil
	}
	base, err := url.Parse(origin)
	if err != nil {
		return "", err
	}
	ref := &url.URL{Path: rest, RawQuery: rawQuery}
	return base.ResolveReference(ref).String(), nil
}

func (p *RangeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	t, known := p.targets[id]
	p.mu.Unlock()
	if !known || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	src, err := Resolve(t.url, t.name, rest, r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	start, end, ok := ParseRangeStart(r.Header.Get("Range"))
	if !ok {
		http.Error(w, "unsupported range", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	fetch := func(from, to int64) (*http.Response, error) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, src, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range t.headers {
			req.Header.Set(k, v)
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		return p.Client.Do(req)
	}
	chunk := p.ChunkSize
	last := start + chunk - 1
	if end >= 0 && end < last {
		last = end
	}
	resp, err := fetch(start, last)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	total, ranged := ParseContentRange(resp.Header.Get("Content-Range"))
	if resp.StatusCode != http.StatusPartialContent || !ranged {
		// The origin ignores ranges (or failed): pass its answer through.
		defer resp.Body.Close()
		for _, k := range []string{"Content-Type", "Content-Length"} {
			if v := resp.Header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		if r.Method == http.MethodGet {
			_, _ = io.Copy(w, resp.Body)
		}
		return
	}
	stop := total - 1
	if end >= 0 && end < stop {
		stop = end
	}
	w.Header().Set("Accept-Ranges", "bytes")
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(stop-start+1, 10))
	if r.Header.Get("Range") == "" {
		w.WriteHeader(http.StatusOK) // asked for the whole object
	} else {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, stop, total))
		w.WriteHeader(http.StatusPartialContent)
	}
	if r.Method == http.MethodHead {
		resp.Body.Close()
		return
	}
	for at := start; ; {
		n, err := io.Copy(w, resp.Body)
		resp.Body.Close()
		at += n
		if err != nil || at > stop {
			return // ffmpeg went away (a seek) or everything was sent
		}
		chunk = min(2*chunk, max(p.MaxChunk, p.ChunkSize))
		next := min(at+chunk-1, stop)
		if resp, err = fetch(at, next); err != nil {
			return
		}
		if resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return
		}
	}
}
