package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// connCounter is a media server that counts every connection made to it:
// the proof that a refused address was never connected to.
type connCounter struct {
	url   string
	conns atomic.Int32
}

func serveCounting(t *testing.T, addr string, h http.Handler) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// An agent refuses sources on its own loopback by default, names the
// address and the flag in the task's error, and never connects; with
// -allow-sources for one address, an HLS playlist there still cannot make
// it fetch an absolute segment URI on another loopback address.
func TestEgressPolicyRefusesLoopbackAndPlaylistEscapes(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))

	// Default policy: loopback refused.
	media := serveCounting(t, "127.0.0.1:0", http.FileServer(http.Dir(mediaDir)))
	strict := start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-allow-sources=", "-name", "strict")
	res := ctl(t, c.url, "submit", writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 1}]\n", media.url)), "--wait")
	if res.code != 2 {
		t.Fatalf("loopback source: exit %d, want 2 (failed)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	mustContain(t, res.stderr, "source address 127.0.0.1 is not allowed (see -allow-sources)", "job error")
	mustContain(t, res.stderr, "source "+media.url+"/a.mp4", "job error")
	if n := media.conns.Load(); n != 0 {
		t.Errorf("the refused source saw %d connections, want none", n)
	}
	strict.kill(syscall.SIGINT)

	// Allowed: 127.0.0.1 only. The playlist there names a segment on
	// 127.0.0.2 by absolute URI, which the agent's proxy must refuse too.
	other := serveCounting(t, "127.0.0.2:0", http.FileServer(http.Dir(mediaDir)))
	dir := t.TempDir()
	segs, err := filepath.Glob(filepath.Join(mediaDir, "b-*.ts"))
	if err != nil || len(segs) < 2 {
		t.Fatalf("HLS test media missing: %v", err)
	}
	var pl strings.Builder
	pl.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n")
	for i, s := range segs {
		uri := filepath.Base(s)
		if i == 1 {
			uri = other.url + "/" + uri
		}
		fmt.Fprintf(&pl, "#EXTINF:2.0,\n%s\n", uri)
	}
	pl.WriteString("#EXT-X-ENDLIST\n")
	for _, s := range segs {
		if err := os.Symlink(s, filepath.Join(dir, filepath.Base(s))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "escape.m3u8"), []byte(pl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	home := serveCounting(t, "127.0.0.1:0", http.FileServer(http.Dir(dir)))
	start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-allow-sources", "127.0.0.1/32", "-name", "one-address")
	res = ctl(t, c.url, "submit", writeSpec(t, fmt.Sprintf("highlights: [{url: %s/escape.m3u8, at: 0, duration: 5}]\n", home.url)), "--wait")
	if res.code != 2 {
		t.Fatalf("playlist escaping to 127.0.0.2: exit %d, want 2 (failed)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	mustContain(t, res.stderr, "source address 127.0.0.2 is not allowed (see -allow-sources)", "job error")
	if home.conns.Load() == 0 {
		t.Error("the allowed playlist server was never asked: the test proves nothing")
	}
	// Proof of absence: the job has failed for good, so every attempt is over.
	if n := other.conns.Load(); n != 0 {
		t.Errorf("the address the playlist escaped to saw %d connections, want none", n)
	}
}
