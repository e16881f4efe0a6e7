package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A committed object the agent downloads (a concat's segment, its list of
// inputs) must be what the coordinator accepted: a changed object fails
// the task instead of ending up in a montage.
func TestDownloadChecksWhatWasAccepted(t *testing.T) {
	body := bytes.Repeat([]byte("segment "), 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	a := &Agent{http: srv.Client()}
	dir := t.TempDir()
	cases := []struct {
		name string
		size int64
		sha  string
		ok   bool
	}{
		{"as accepted", int64(len(body)), good, true},
		{"upper-case sum", int64(len(body)), strings.ToUpper(good), true},
		{"other bytes", int64(len(body)), strings.Repeat("0", 64), false},
		{"other size", int64(len(body)) - 1, good, false},
		{"nothing to check against", 0, "", true},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		err := a.download(context.Background(), srv.URL, p, c.size, c.sha)
		if c.ok != (err == nil) {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "the stored object changed")) {
			t.Errorf("%s: error %v does not say the object changed", c.name, err)
		}
		if c.ok {
			if b, _ := os.ReadFile(p); !bytes.Equal(b, body) {
				t.Errorf("%s: file differs", c.name)
			}
		}
	}
}

// A lease that would fill the disk is refused with errNoRoom (which the
// agent hands back without using an attempt); one that fits is taken.
func TestCheckDisk(t *testing.T) {
	a := &Agent{id: "a1", cfg: Config{DataDir: t.TempDir()}}
	if err := a.checkDisk(&montagev1.Lease{ExpectedBytes: 1 << 20}); err != nil {
		t.Errorf("1 MiB does not fit: %v", err)
	}
	err := a.checkDisk(&montagev1.Lease{ExpectedBytes: 1 << 60})
	if !errors.Is(err, errNoRoom) || !strings.Contains(err.Error(), "GB free in "+a.cfg.DataDir) {
		t.Errorf("an exabyte fits: %v", err)
	}
	if err := a.checkDisk(&montagev1.Lease{}); err != nil {
		t.Errorf("a lease without an estimate: %v", err)
	}
}
