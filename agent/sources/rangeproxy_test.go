package sources

import (
	"bytes"
	"io"
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
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var sent atomic.Int64
	var openEnded atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("Range"), "-") {
			openEnded.Add(1)
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
	u, done := p.Register(origin.URL+"/v.mp4?sig=1", nil)
	defer done()

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
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 1000-1048575/1048576" {
		t.Fatalf("range read: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	first := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, body[1000:1100]) {
		t.Fatalf("range read bytes wrong: %v", err)
	}
	resp.Body.Close() // a seek: the reader goes away after 100 bytes
	time.Sleep(200 * time.Millisecond)
	if n := sent.Load(); n > 4*p.ChunkSize {
		t.Errorf("origin sent %d bytes for a reader that took 100; want a few chunks of %d at most", n, p.ChunkSize)
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
