package sources

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestResolveStaysOnTheOrigin(t *testing.T) {
	origin := "https://cdn.example/vods/123/index.m3u8?sig=abc"
	cases := []struct{ rest, query, want string }{
		{"index.m3u8", "", origin},
		{"seg-001.ts", "", "https://cdn.example/vods/123/seg-001.ts"},
		{"chunked/seg-001.ts", "t=1", "https://cdn.example/vods/123/chunked/seg-001.ts?t=1"},
		{"../456/seg.ts", "", "https://cdn.example/vods/456/seg.ts"},
		{"/evil.example/x", "", "https://cdn.example/evil.example/x"},
		{"//evil.example/x", "", "https://cdn.example//evil.example/x"},
		{"http:%2F%2Fevil.example/x", "", "https://cdn.example/vods/123/http:%252F%252Fevil.example/x"},
	}
	for _, c := range cases {
		got, err := Resolve(origin, "index.m3u8", c.rest, c.query)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.rest, got, err, c.want)
		}
		if !strings.HasPrefix(got, "https://cdn.example/") {
			t.Errorf("Resolve(%q) left the origin: %s", c.rest, got)
		}
	}
}

func TestParseRanges(t *testing.T) {
	for h, want := range map[string][3]int64{"": {0, -1, 1}, "bytes=0-": {0, -1, 1}, "bytes=100-": {100, -1, 1},
		"bytes=5-9": {5, 9, 1}, "bytes=9-5": {0, 0, 0}, "bytes=-5": {0, 0, 0}, "bytes=0-1,4-5": {0, 0, 0}, "items=0-": {0, 0, 0}} {
		s, e, ok := ParseRangeStart(h)
		if ok != (want[2] == 1) || ok && (s != want[0] || e != want[1]) {
			t.Errorf("ParseRangeStart(%q) = %d, %d, %v; want %v", h, s, e, ok, want)
		}
	}
	if n, ok := ParseContentRange("bytes 0-9/1234"); !ok || n != 1234 {
		t.Errorf("ParseContentRange = %d, %v", n, ok)
	}
	if _, ok := ParseContentRange("bytes 0-9/*"); ok {
		t.Error("unknown total accepted")
	}
}

// The proxy answers open-ended ranges in full while asking the origin only
// for bounded chunks, and stops fetching soon after its reader goes away.
func TestProxyFetchesInBoundedChunks(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	var sent, asked atomic.Int64
	var openEnded atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("Range"), "-") {
			openEnded.Add(1)
		}
		if a, b, ok := ParseRangeStart(r.Header.Get("Range")); ok && b >= a {
			asked.Add(b - a + 1)
		}
		http.ServeContent(countingResponse{w, &sent}, r, "v.mp4", time.Time{}, bytes.NewReader(body))
	}))
	defer origin.Close()
	p, err := StartRangeProxy(origin.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.ChunkSize = 64 << 10
	route := p.Register(origin.URL+"/v.mp4?sig=1", nil, false)
	defer route.Close()
	u := route.URL
	// How far the proxy runs ahead of a reader is bounded by the socket
	// buffers between them; the reader's is small and fixed here (like
	// ffmpeg's -recv_buffer_size), or the kernel would grow it under load
	// and let the proxy fill megabytes before the reader's close arrives.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}

	// A whole read gets every byte, with a 200 when no range was asked.
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("whole read: status %d, %d bytes", resp.StatusCode, len(got))
	}
	// An open-ended range gets a 206 with the right Content-Range.
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Range", "bytes=1000-")
	sent.Store(0)
	asked.Store(0)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 1000-4194303/4194304" {
		t.Fatalf("range read: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	first := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, body[1000:1100]) {
		t.Fatalf("range read bytes wrong: %v", err)
	}
	resp.Body.Close() // a seek: the reader goes away after 100 bytes
	client.CloseIdleConnections()
	// The proxy's handler ending is the event that bounds what it fetched.
	deadline := time.Now().Add(10 * time.Second)
	for p.Inflight() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Inflight() > 0 {
		t.Fatal("the proxy kept serving a reader that went away")
	}
	// Chunks double (64, 128, 256 KiB): the first two fit in the socket
	// buffers between proxy and reader, the third blocks until the reader's
	// close arrives, however late that is on a busy machine; a fourth can
	// never be asked for.
	if n := asked.Load(); n > 7*p.ChunkSize {
		t.Errorf("origin was asked for %d bytes (sent %d) for a reader that took 100; want at most 3 chunks (64+128+256 KiB) of the 4 MiB", n, sent.Load())
	}
	if openEnded.Load() != 0 {
		t.Errorf("%d open-ended requests reached the origin", openEnded.Load())
	}
	// Unknown ids are not served.
	if r, err := http.Get(strings.Replace(u, "/v.mp4", "x/v.mp4", 1)); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown id: %v %v", r.StatusCode, err)
	}
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingResponse) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestRewritePlaylist(t *testing.T) {
	in := "#EXTM3U\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k1\",IV=0x1\r\n#EXTINF:2,\r\nseg-1.ts\r\n" +
		"#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nhttp://169.254.169.254/latest/meta-data\n\n  //evil.example/x.ts  \n#EXT-X-ENDLIST\n"
	var seen []string
	out := string(RewritePlaylist([]byte(in), func(u string) string {
		seen = append(seen, u)
		return "P(" + u + ")"
	}))
	want := "#EXTM3U\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"P(https://keys.example/k1)\",IV=0x1\r\n#EXTINF:2,\r\nP(seg-1.ts)\r\n" +
		"#EXT-X-MAP:URI=\"P(init.mp4)\"\n#EXTINF:2,\nP(http://169.254.169.254/latest/meta-data)\n\nP(//evil.example/x.ts)\n#EXT-X-ENDLIST\n"
	if out != want {
		t.Errorf("rewritten:\n%q\nwant\n%q", out, want)
	}
	if len(seen) != 5 {
		t.Errorf("saw %d URIs, want 5: %q", len(seen), seen)
	}
}

// Absolute URIs in a playlist come back through the proxy, so the client
// (and its egress policy) makes every connection; a refused fetch is
// recorded with the source's URL and the cause, and the proxy's own URLs in
// an ffmpeg message are mapped back to the source.
func TestProxyRoutesPlaylistURIsAndExplainsFailures(t *testing.T) {
	var reqs []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs = append(reqs, r.URL.Path)
		switch r.URL.Path {
		case "/vod/index.m3u8":
			io.WriteString(w, "#EXTM3U\n#EXTINF:2,\nseg-1.ts\n#EXTINF:2,\n"+"http://"+r.Host+"/other/seg-2.ts\n#EXTINF:2,\nhttps://blocked.example/seg-3.ts\n")
		case "/vod/seg-1.ts", "/other/seg-2.ts":
			io.WriteString(w, "segment "+r.URL.Path)
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	// The client refuses blocked.example the way the egress dialer does.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "blocked.example") {
			return nil, errors.New("source address 169.254.169.254 is not allowed (see -allow-sources): link-local")
		}
		return (&net.Dialer{}).DialContext(ctx, network, origin.Listener.Addr().String())
	}}}
	p, err := StartRangeProxy(client)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	route := p.Register(origin.URL+"/vod/index.m3u8?token=secret", nil, true)
	defer route.Close()
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, playlist := get(route.URL)
	if code != 200 {
		t.Fatalf("playlist: %d %s", code, playlist)
	}
	prefix := strings.TrimSuffix(route.URL, "index.m3u8")
	var uris []string
	for _, l := range strings.Split(playlist, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			uris = append(uris, l)
		}
	}
	if len(uris) != 3 || uris[0] != "seg-1.ts" || !strings.HasPrefix(uris[1], "http://127.0.0.1:") || !strings.HasPrefix(uris[2], "http://127.0.0.1:") ||
		strings.Contains(playlist, origin.URL) || strings.Contains(playlist, "blocked.example") {
		t.Fatalf("absolute URIs not routed through the proxy:\n%s", playlist)
	}
	if code, body := get(prefix + uris[0]); code != 200 || body != "segment /vod/seg-1.ts" {
		t.Errorf("relative segment: %d %q", code, body)
	}
	if code, body := get(uris[1]); code != 200 || body != "segment /other/seg-2.ts" {
		t.Errorf("absolute segment: %d %q", code, body)
	}
	if route.Err() != nil {
		t.Errorf("error recorded before any failure: %v", route.Err())
	}
	if code, _ := get(uris[2]); code != http.StatusBadGateway {
		t.Errorf("refused segment: status %d, want 502", code)
	}
	e := route.Err()
	if e == nil || !strings.Contains(e.Error(), "source https://blocked.example/seg-3.ts: ") || !strings.Contains(e.Error(), "is not allowed") {
		t.Errorf("route error %v; want the source URL and the refusal", e)
	}
	msg := route.Unproxy("Failed to open " + route.URL + " and " + uris[1])
	if strings.Contains(msg, p.ln.Addr().String()) || strings.Contains(msg, "secret") || !strings.Contains(msg, origin.URL+"/vod/index.m3u8") {
		t.Errorf("Unproxy = %q", msg)
	}
	route.Close()
	if code, _ := get(uris[1]); code != http.StatusNotFound {
		t.Errorf("a closed route's playlist URIs still served: %d", code)
	}
}

// A source's identity (ETag, Last-Modified, size) is the same whether it
// is read through the proxy for a render or probed with one byte, and it
// changes when the file at the URL changes.
func TestIdentityOfASource(t *testing.T) {
	body := []byte(strings.Repeat("first version ", 1000))
	mod := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "v.mp4", mod, bytes.NewReader(body))
	}))
	defer origin.Close()
	probe, err := Probe(context.Background(), origin.Client(), origin.URL+"/v.mp4", nil)
	want := `etag="v1"; modified=Sun, 01 Nov 2026 12:00:00 GMT; size=14000`
	if err != nil || probe != want {
		t.Fatalf("Probe = %q, %v; want %q", probe, err, want)
	}
	p, err := StartRangeProxy(origin.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	route := p.Register(origin.URL+"/v.mp4", nil, false)
	defer route.Close()
	req, _ := http.NewRequest(http.MethodGet, route.URL, nil)
	req.Header.Set("Range", "bytes=500-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := route.Identity(); got != probe {
		t.Errorf("identity seen by a render %q, by a probe %q", got, probe)
	}
	body = []byte(strings.Repeat("second version", 1000)) // same size, new ETag
	origin.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v.mp4" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"v2"`)
		http.ServeContent(w, r, "v.mp4", mod, bytes.NewReader(body))
	})
	if again, _ := Probe(context.Background(), origin.Client(), origin.URL+"/v.mp4", nil); again == probe {
		t.Errorf("a changed file has the same identity %q", again)
	}
	if _, err := Probe(context.Background(), origin.Client(), origin.URL+"/missing", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("probe of a missing file: %v", err)
	}
}
