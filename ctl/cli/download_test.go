package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// outputs is a JobService that hands out a link to body with the checksum
// the test chooses.
type outputs struct {
	montagev1connect.UnimplementedJobServiceHandler
	url, sum string
	size     int64
}

func (o *outputs) GetOutputURL(context.Context, *connect.Request[montagev1.GetOutputURLRequest]) (*connect.Response[montagev1.GetOutputURLResponse], error) {
	return connect.NewResponse(&montagev1.GetOutputURLResponse{Url: o.url, Key: "jobs/j1/montage.mp4", Sha256: o.sum, Size: o.size}), nil
}

// A download is checked against what the farm accepted: a changed object
// is refused and removed, never left looking like the montage.
func TestDownloadVerifiesTheAcceptedChecksum(t *testing.T) {
	body := bytes.Repeat([]byte("montage "), 4096)
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer blob.Close()
	good := sha256.Sum256(body)
	other := sha256.Sum256([]byte("what was accepted"))
	for _, c := range []struct {
		name string
		sum  string
		size int64
		code int
	}{
		{"matches", hex.EncodeToString(good[:]), int64(len(body)), 0},
		{"changed", hex.EncodeToString(other[:]), int64(len(body)), 1},
		{"truncated", hex.EncodeToString(good[:]), int64(len(body)) + 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, h := montagev1connect.NewJobServiceHandler(&outputs{url: blob.URL, sum: c.sum, size: c.size})
			mux := http.NewServeMux()
			mux.Handle(path, h)
			api := httptest.NewServer(mux)
			defer api.Close()
			dst := filepath.Join(t.TempDir(), "m.mp4")
			var out, errOut bytes.Buffer
			code := Main([]string{"--addr", api.URL, "download", "j1", "-o", dst}, &out, &errOut)
			if code != c.code {
				t.Fatalf("exit %d, want %d: %s", code, c.code, errOut.String())
			}
			_, statErr := os.Stat(dst)
			if c.code == 0 && statErr != nil {
				t.Errorf("verified download missing: %v", statErr)
			}
			if c.code != 0 && (statErr == nil || !strings.Contains(errOut.String(), "the farm accepted")) {
				t.Errorf("bad download kept (%v) or not explained: %s", statErr, errOut.String())
			}
		})
	}
}
