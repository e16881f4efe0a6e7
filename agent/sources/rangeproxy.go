package sources

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// inflight counts requests being served, so tests can wait for the
	// proxy to finish with a reader instead of sleeping.
	inflight atomic.Int32
	// read counts the source bytes passed to readers.
	read atomic.Int64

	mu      sync.Mutex
	targets map[string]target
	byURL   map[string]string // group + "\x00" + absolute URL → id, for playlist rewrites
	errs    map[string]error  // group → the last upstream failure
	idents  map[string]string // group → identity of the route's source
}

type target struct {
	url     string
	name    string // the last path element of url, as the proxy URL ends
	headers map[string]string
	// hls: playlists under this target are rewritten so that absolute
	// URIs in them come back through the proxy too.
	hls bool
	// group is the id of the Register call this target belongs to
	// (itself, or the route whose playlist named it).
	group string
}

// Route is one registered source.
type Route struct {
	// URL is what ffmpeg reads instead of the source.
	URL string
	p   *RangeProxy
	id  string
}

// Close forgets the route and every URI its playlists named.
func (r *Route) Close() {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for id, t := range r.p.targets {
		if t.group == r.id {
			delete(r.p.targets, id)
		}
	}
	for k, id := range r.p.byURL {
		if _, ok := r.p.targets[id]; !ok {
			delete(r.p.byURL, k)
		}
	}
	delete(r.p.errs, r.id)
	delete(r.p.idents, r.id)
}

// Err is the last failure fetching from the source (a refused or dead
// address, a TLS error, an error status), named by the source's URL
// without its query; nil when every fetch worked. ffmpeg only sees the
// proxy's 502, so this is what says why a render failed.
func (r *Route) Err() error {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.p.errs[r.id]
}

// Unproxy replaces this route's loopback URLs in s (an ffmpeg message) by
// the source they stand for, without its query.
func (r *Route) Unproxy(s string) string {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	prefix := "http://" + r.p.ln.Addr().String() + "/"
	for id, t := range r.p.targets {
		if t.group != r.id {
			continue
		}
		s = strings.ReplaceAll(s, prefix+id+"/"+url.PathEscape(t.name), withoutQuery(t.url))
		s = strings.ReplaceAll(s, prefix+id+"/", withoutQuery(t.url)+" → ")
	}
	return s
}

// Identity is what the source's first answer said of its bytes (see
// IdentityOf); "" before any answer.
func (r *Route) Identity() string {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.p.idents[r.id]
}

// seen records the identity of a route's own source from its first answer.
func (p *RangeProxy) seen(t target, id, rest string, resp *http.Response) {
	if id != t.group || rest != t.name || resp.StatusCode/100 != 2 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.idents[t.group]; !ok {
		p.idents[t.group] = IdentityOf(resp)
	}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err // the URL is named by the caller, without its signature
	}
	return err
}

func (p *RangeProxy) fail(group, src string, err error) {
	err = unwrapURLError(err)
	p.mu.Lock()
	p.errs[group] = fmt.Errorf("source %s: %w", withoutQuery(src), err)
	p.mu.Unlock()
}

func withoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// proxyBuffer bounds the kernel's buffering between proxy and ffmpeg.
const proxyBuffer = 64 << 10

// StartRangeProxy listens on loopback.
func StartRangeProxy(client *http.Client) (*RangeProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("range proxy: %w", err)
	}
	p := &RangeProxy{Client: client, ChunkSize: 128 << 10, MaxChunk: 256 << 10, ln: ln,
		targets: map[string]target{}, byURL: map[string]string{}, errs: map[string]error{}, idents: map[string]string{}}
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

// BytesRead is how many source bytes the proxy has passed to readers.
func (p *RangeProxy) BytesRead() int64 { return p.read.Load() }

// Register returns the route ffmpeg should read instead of origin; hls
// says origin is a playlist. The URL is unguessable, so another local
// process cannot use the proxy to reach what the agent can.
func (p *RangeProxy) Register(origin string, headers map[string]string, hls bool) *Route {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := newID()
	u := p.add(id, target{url: origin, headers: headers, hls: hls, group: id})
	return &Route{URL: u, p: p, id: id}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// add stores t under id and returns its proxy URL; p.mu is held.
func (p *RangeProxy) add(id string, t target) string {
	t.name = ""
	if u, err := url.Parse(t.url); err == nil {
		t.name = path.Base(u.Path)
	}
	if t.name == "." || t.name == "/" || t.name == "" {
		t.name = "media"
	}
	p.targets[id] = t
	return "http://" + p.ln.Addr().String() + "/" + id + "/" + url.PathEscape(t.name)
}

// child returns the proxy URL for an absolute URI a playlist of parent
// named, registering it once per route.
func (p *RangeProxy) child(parent target, abs string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := parent.group + "\x00" + abs
	if id, ok := p.byURL[k]; ok {
		if t, ok := p.targets[id]; ok {
			return "http://" + p.ln.Addr().String() + "/" + id + "/" + url.PathEscape(t.name)
		}
	}
	id := newID()
	p.byURL[k] = id
	return p.add(id, target{url: abs, headers: parent.headers, hls: parent.hls, group: parent.group})
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
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
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
	if t.hls && (rest == t.name || isPlaylistPath(rest)) {
		p.servePlaylist(w, r, t, id, rest, src)
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
		p.fail(t.group, src, err)
		http.Error(w, "source unreachable", http.StatusBadGateway)
		return
	}
	// A range past the end (416) is a reader probing, not a broken source.
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		p.fail(t.group, src, fmt.Errorf("the server answered %s", resp.Status))
	}
	p.seen(t, id, rest, resp)
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
			n, _ := io.Copy(w, resp.Body)
			p.read.Add(n)
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
		p.read.Add(n)
		at += n
		if err != nil || at > stop {
			return // ffmpeg went away (a seek) or everything was sent
		}
		chunk = min(2*chunk, max(p.MaxChunk, p.ChunkSize))
		next := min(at+chunk-1, stop)
		if resp, err = fetch(at, next); err != nil {
			if r.Context().Err() == nil {
				p.fail(t.group, src, err)
			}
			return
		}
		if resp.StatusCode != http.StatusPartialContent {
			p.fail(t.group, src, fmt.Errorf("the server answered %s to a range request", resp.Status))
			resp.Body.Close()
			return
		}
	}
}

// Inflight is how many requests the proxy is serving now.
func (p *RangeProxy) Inflight() int { return int(p.inflight.Load()) }

func isPlaylistPath(rest string) bool {
	l := strings.ToLower(rest)
	return strings.HasSuffix(l, ".m3u8") || strings.HasSuffix(l, ".m3u")
}

// maxPlaylist bounds a playlist the proxy reads whole (a 24-hour VOD in
// 2-second segments is about 3 MB).
const maxPlaylist = 16 << 20

// servePlaylist fetches a playlist whole and rewrites its absolute URIs to
// routes of this proxy, so that every segment, key and variant playlist is
// fetched here, through the egress policy, and never by ffmpeg directly.
func (p *RangeProxy) servePlaylist(w http.ResponseWriter, r *http.Request, t target, id, rest, src string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, src, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		p.fail(t.group, src, err)
		http.Error(w, "source unreachable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.fail(t.group, src, fmt.Errorf("the server answered %s", resp.Status))
		w.WriteHeader(resp.StatusCode)
		return
	}
	p.seen(t, id, rest, resp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPlaylist+1))
	if err != nil || len(body) > maxPlaylist {
		if err == nil {
			err = fmt.Errorf("playlist larger than %d bytes", maxPlaylist)
		}
		p.fail(t.group, src, err)
		http.Error(w, "bad playlist", http.StatusBadGateway)
		return
	}
	if bytes.HasPrefix(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), []byte("#EXTM3U")) {
		base, _ := url.Parse(src)
		body = RewritePlaylist(body, func(uri string) string {
			u, err := url.Parse(uri)
			if err != nil || !u.IsAbs() && !strings.HasPrefix(uri, "//") {
				return uri // relative: resolves against this route, on the same host
			}
			abs := base.ResolveReference(u)
			if abs.Scheme != "http" && abs.Scheme != "https" {
				return uri // file:, data: ... are not on ffmpeg's protocol whitelist
			}
			return p.child(t, abs.String())
		})
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// RewritePlaylist passes every URI of an HLS playlist through fn: the URI
// lines and every URI="..." attribute of a tag (keys, maps, media and
// i-frame playlists). Everything else is kept byte for byte.
func RewritePlaylist(body []byte, fn func(string) string) []byte {
	lines := strings.SplitAfter(string(body), "\n")
	var b strings.Builder
	b.Grow(len(body))
	for _, line := range lines {
		content := strings.TrimRight(line, "\r\n")
		eol := line[len(content):]
		trimmed := strings.TrimSpace(content)
		switch {
		case trimmed == "":
			b.WriteString(line)
		case strings.HasPrefix(trimmed, "#"):
			b.WriteString(rewriteURIAttrs(content, fn))
			b.WriteString(eol)
		default:
			b.WriteString(fn(trimmed))
			b.WriteString(eol)
		}
	}
	return []byte(b.String())
}

func rewriteURIAttrs(tag string, fn func(string) string) string {
	var b strings.Builder
	for {
		i := strings.Index(tag, `URI="`)
		if i < 0 {
			b.WriteString(tag)
			return b.String()
		}
		b.WriteString(tag[:i+5])
		rest := tag[i+5:]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(fn(rest[:j]))
		b.WriteByte('"')
		tag = rest[j+1:]
	}
}
