package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/clock"
)

func newStore(t *testing.T) (*Local, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	l, err := NewLocal(t.TempDir(), srv.URL, clk)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(PathPrefix, l)
	return l, clk
}

func do(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLocalPutGetRangeDelete(t *testing.T) {
	l, _ := newStore(t)
	key := SegmentKey("j1", "j1-r000", 1)
	put, _ := l.PresignPut(key, time.Minute)
	if code, body := do(t, http.MethodPut, put, "0123456789"); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	get, _ := l.PresignGet(key, time.Minute)
	if code, body := do(t, http.MethodGet, get, ""); code != 200 || body != "0123456789" {
		t.Fatalf("get: %d %q", code, body)
	}
	if code, body := do(t, http.MethodGet, get, "", "Range", "bytes=3-5"); code != http.StatusPartialContent || body != "345" {
		t.Fatalf("range get: %d %q", code, body)
	}
	sum := sha256.Sum256([]byte("0123456789"))
	if err := l.Verify(context.Background(), key, 10, hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := l.Verify(context.Background(), key, 10, strings.Repeat("0", 64)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify with a wrong sum: %v", err)
	}
	if err := l.Verify(context.Background(), key, 11, hex.EncodeToString(sum[:])); !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify with a wrong size: %v", err)
	}
	if err := l.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(context.Background(), key); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := l.Verify(context.Background(), key, 10, hex.EncodeToString(sum[:])); !errors.Is(err, ErrMissing) {
		t.Fatalf("verify after delete: %v", err)
	}
	if code, _ := do(t, http.MethodGet, get, ""); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}
}

func TestLocalURLsAreScoped(t *testing.T) {
	l, clk := newStore(t)
	put, _ := l.PresignPut("jobs/a/x.mp4", time.Minute)
	get, _ := l.PresignGet("jobs/a/x.mp4", time.Minute)
	if code, _ := do(t, http.MethodPut, put, "data"); code != 200 {
		t.Fatal("put failed")
	}
	other := strings.Replace(get, "jobs/a/x.mp4", "jobs/a/y.mp4", 1)
	cases := []struct {
		name, method, url string
		want              int
	}{
		{"GET with a PUT url", http.MethodGet, put, http.StatusForbidden},
		{"PUT with a GET url", http.MethodPut, get, http.StatusForbidden},
		{"url for another key", http.MethodGet, other, http.StatusForbidden},
		{"tampered expiry", http.MethodGet, strings.Replace(get, "exp=", "exp=9", 1), http.StatusForbidden},
		{"no signature", http.MethodGet, strings.Split(get, "?")[0], http.StatusForbidden},
		{"DELETE", http.MethodDelete, get, http.StatusMethodNotAllowed},
		// The mux cleans the path first; the signature then no longer matches.
		{"dot segment", http.MethodGet, strings.Replace(get, "jobs/a/x.mp4", "jobs/../x.mp4", 1), http.StatusForbidden},
	}
	for _, c := range cases {
		if code, _ := do(t, c.method, c.url, "evil"); code != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, code, c.want)
		}
	}
	clk.Advance(2 * time.Minute)
	if code, body := do(t, http.MethodGet, get, ""); code != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Errorf("expired url: %d %q", code, body)
	}
	// Nothing the refused requests sent was stored.
	get2, _ := l.PresignGet("jobs/a/x.mp4", time.Minute)
	if _, body := do(t, http.MethodGet, get2, ""); body != "data" {
		t.Errorf("object changed to %q", body)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"jobs/a/b.mp4", "cache/abc-1.mp4"} {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "/abs", "a//b", "a/../b", "a/./b", "sp ace", "a\\b", strings.Repeat("x", 513)} {
		if CheckKey(k) == nil {
			t.Errorf("CheckKey(%q) accepted", k)
		}
	}
	if _, err := (&Local{}).PresignGet("../etc/passwd", time.Minute); err == nil {
		t.Error("presigned a bad key")
	}
}

// A PUT over the store's size limit is refused, whether it says its length
// or streams it, and leaves nothing behind: never a truncated object.
func TestLocalPutOverTheLimit(t *testing.T) {
	l, _ := newStore(t)
	l.maxSize = 10
	for i, chunked := range []bool{false, true} {
		key := SegmentKey("j1", "j1-r000", uint64(i+1))
		u, _ := l.PresignPut(key, time.Minute)
		var body io.Reader = strings.NewReader("0123456789A")
		if chunked {
			body = io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("A")) // no length known
		}
		req, _ := http.NewRequest(http.MethodPut, u, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v: HTTP %d, want 413", chunked, resp.StatusCode)
		}
		if _, err := l.Stat(context.Background(), key); !errors.Is(err, ErrMissing) {
			t.Errorf("chunked=%v: an object was stored: %v", chunked, err)
		}
	}
}
