package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noProgress() (progressFunc, func()) { return func(int64, int64) {}, func() {} }

func TestFetchResumes(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "m.mp4")
	// A broken earlier download left the first 4,000 bytes.
	if err := os.WriteFile(dst+".part", body[:4000], 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := fetch(context.Background(), srv.Client(), srv.URL, dst, noProgress)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("fetch = %d, %v", n, err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, body) || ranges[0] != "bytes=4000-" {
		t.Fatalf("resumed download differs (range %q)", ranges[0])
	}
	if _, err := os.Stat(dst + ".part"); !os.IsNotExist(err) {
		t.Error(".part left behind")
	}
	// A fresh download needs no range; a failing server leaves no final file.
	dst2 := filepath.Join(t.TempDir(), "n.mp4")
	if _, err := fetch(context.Background(), srv.Client(), srv.URL, dst2, noProgress); err != nil {
		t.Fatal(err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "URL expired", http.StatusForbidden)
	}))
	defer bad.Close()
	dst3 := filepath.Join(t.TempDir(), "x.mp4")
	if _, err := fetch(context.Background(), bad.Client(), bad.URL, dst3, noProgress); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("fetch from a refusing server: %v", err)
	}
	if _, err := os.Stat(dst3); !os.IsNotExist(err) {
		t.Error("a refused download created the file")
	}
}

// A server that cuts the body short leaves a .part that the next run resumes.
func TestFetchInterrupted(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 10000)
	cut := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut {
			cut = false
			w.Header().Set("Content-Length", "10000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body[:3000])
			return // the client sees an unexpected EOF
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "m.mp4")
	if _, err := fetch(context.Background(), srv.Client(), srv.URL, dst, noProgress); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("cut download: %v", err)
	}
	if st, err := os.Stat(dst + ".part"); err != nil || st.Size() != 3000 {
		t.Fatalf(".part after the cut: %v %v", st, err)
	}
	if _, err := fetch(context.Background(), srv.Client(), srv.URL, dst, noProgress); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Error("resumed file differs")
	}
}
