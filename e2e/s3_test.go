package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/internal/s3test"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

const s3Bucket = "montage-e2e"

var s3Env = []string{"MONTAGE_S3_ACCESS_KEY=" + s3test.AccessKey, "MONTAGE_S3_SECRET_KEY=" + s3test.SecretKey}

// s3Coordinator starts a coordinator on a fresh S3 server with quick
// housekeeping and a small multipart threshold, so montages go up in parts.
func s3Coordinator(t testing.TB, extra ...string) (*coordinator, *blob.S3) {
	t.Helper()
	srv := s3test.Start(t)
	args := append([]string{"-s3-endpoint", srv.Endpoint, "-s3-bucket", s3Bucket,
		"-multipart-threshold", "262144", "-part-size", "5242880", "-janitor-interval", "1s", "-purge-delay", "0s"}, extra...)
	c := startCoordinatorEnv(t, s3Env, t.TempDir(), freePort(t), args...)
	store, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: srv.Endpoint, Bucket: s3Bucket,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return c, store
}

// A montage through a coordinator and two agents on S3, downloaded with
// montagectl and checked with ffprobe; afterwards only the montage is left.
func TestMontageOnS3WithTwoAgents(t *testing.T) {
	c, store := s3Coordinator(t)
	startAgent(t, c.url, t.TempDir())
	startAgent(t, c.url, t.TempDir())
	waitFor(t, 30*time.Second, "both agents registered", func() bool {
		return strings.Count(c.out.String(), "agent registered") >= 2
	})
	res := ctl(t, c.url, "submit", writeSpec(t, mixedSpec("s3", 3)), "--wait")
	if res.code != 0 {
		t.Fatalf("submit --wait exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	id := strings.Fields(res.stdout)[1]
	j := getJob(t, c.url, id)
	checkCommittedOnce(t, j)
	agents := map[string]bool{}
	for _, task := range j.GetTasks() {
		agents[task.GetAgentId()] = true
	}
	if len(agents) < 2 {
		t.Errorf("all tasks ran on %v; want both agents used", agents)
	}
	mustContain(t, c.out.String(), "multipart upload started", "coordinator log (montage over the threshold)")

	ctx := context.Background()
	waitFor(t, 30*time.Second, "segments purged, montage at its stable key", func() bool {
		keys, err := store.List(ctx, blob.JobPrefix(id))
		want := map[string]bool{}
		for _, name := range []string{"montage", "chapters", "thumbnail", "manifest"} {
			want[blob.OutputKey(id, name)] = true
		}
		for _, k := range keys {
			if !want[k] {
				return false
			}
		}
		return err == nil && len(keys) == len(want)
	})
	dir := t.TempDir()
	out := filepath.Join(dir, "montage.mp4")
	if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	checkMontage(t, out, []float64{3, 3, 3, 3}, 640, 360, "30/1")
	if r := ctl(t, c.url, "download", id, "--what", "all", "-o", filepath.Join(dir, "all")); r.code != 0 {
		t.Fatalf("download --what all: %s", r.stderr)
	}
	checkMontage(t, filepath.Join(dir, "all", "montage.mp4"), []float64{3, 3, 3, 3}, 640, 360, "30/1")
	u := ctl(t, c.url, "url", id, "--ttl", "10m")
	if u.code != 0 || !strings.HasPrefix(strings.TrimSpace(u.stdout), "http") {
		t.Fatalf("url: %q %s", u.stdout, u.stderr)
	}
	resp, err := http.Get(strings.TrimSpace(u.stdout))
	if err != nil || resp.StatusCode != 200 || resp.ContentLength < 100000 {
		t.Fatalf("shared link: %v %v", err, resp)
	}
	resp.Body.Close()
	if r := ctl(t, c.url, "download", id, "--what", "srt"); r.code == 0 || !strings.Contains(r.stderr, `no "srt" output`) {
		t.Errorf("download of a missing output: %d %s", r.code, r.stderr)
	}
}

// slowProxy sits between agents and the S3 server: it passes requests on
// unchanged (the Host header too, so presigned signatures still match) but
// trickles the bodies of part uploads, and says when one begins.
type slowProxy struct {
	url       string
	partBegan chan string
}

func startSlowProxy(t testing.TB, target string) *slowProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{partBegan: make(chan string, 16)}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Get("uploadId") != "" {
			select {
			case p.partBegan <- r.URL.Path:
			default:
			}
			r.Body = io.NopCloser(&trickle{r: r.Body})
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// trickle reads 16 KiB every 100 ms.
type trickle struct{ r io.Reader }

func (t *trickle) Read(b []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return t.r.Read(b[:min(len(b), 16<<10)])
}

// SIGKILL a real agent while it uploads a segment in parts: no partial object
// is ever visible and, once its lease expires, no unfinished multipart upload
// is left; another agent then finishes the job.
func TestAgentKilledMidUploadOnS3(t *testing.T) {
	srv := s3test.Start(t)
	proxy := startSlowProxy(t, srv.Endpoint)
	c := startCoordinatorEnv(t, s3Env, t.TempDir(), freePort(t), "-s3-endpoint", proxy.url, "-s3-bucket", s3Bucket,
		"-multipart-threshold", "65536", "-part-size", "5242880", "-janitor-interval", "1s", "-lease-ttl", "2s")
	store, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: srv.Endpoint, Bucket: s3Bucket,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 2}]\n", mediaURL)))
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	victim := startAgent(t, c.url, t.TempDir())
	var path string
	select {
	case path = <-proxy.partBegan:
	case <-time.After(60 * time.Second):
		t.Fatal("the agent never started a part upload")
	}
	victim.kill(syscall.SIGKILL)
	key := strings.TrimPrefix(path, "/"+s3Bucket+"/")
	if ups, _ := store.ListMultipart(ctx, "jobs/"); len(ups) != 1 || ups[0].Key != key {
		t.Fatalf("uploads after the kill: %v (want one for %s)", ups, key)
	}
	waitFor(t, 30*time.Second, "the dead agent's upload aborted", func() bool {
		ups, err := store.ListMultipart(ctx, "jobs/")
		return err == nil && len(ups) == 0
	})
	if _, err := store.Stat(ctx, key); err == nil {
		t.Errorf("a partial object is visible at %s", key)
	}
	startAgent(t, c.url, t.TempDir())
	j := waitJobDone(t, c.url, id, 120*time.Second)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job ended %s: %s", j.GetState(), j.GetError())
	}
	checkCommittedOnce(t, j)
	for _, task := range j.GetTasks() {
		if task.GetType() == montagev1.TaskType_TASK_TYPE_RENDER && task.GetAttempts() != 2 {
			t.Errorf("render took %d attempts; want 2 (the killed one and the one that finished)", task.GetAttempts())
		}
	}
}

// Bad S3 configuration stops the coordinator at start with one line that
// says what is wrong.
func TestBadS3ConfigurationStopsCoordinator(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateUser(t, "plainuser", "plainuser-secret", "user")
	closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cases := []struct {
		name, endpoint string
		env            []string
		want           string
	}{
		{"wrong credentials", srv.Endpoint, []string{"MONTAGE_S3_ACCESS_KEY=" + s3test.AccessKey, "MONTAGE_S3_SECRET_KEY=wrong"}, "credentials refused"},
		{"no permission for the bucket", srv.Endpoint, []string{"MONTAGE_S3_ACCESS_KEY=plainuser", "MONTAGE_S3_SECRET_KEY=plainuser-secret"}, "access denied"},
		{"unreachable endpoint", closed, s3Env, "cannot reach the endpoint"},
		{"no credentials", srv.Endpoint, []string{"MONTAGE_S3_ACCESS_KEY=", "MONTAGE_S3_SECRET_KEY=", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "S3 credentials missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, "montage-coordinator"), "-data-dir", t.TempDir(),
				"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-s3-endpoint", tc.endpoint, "-s3-bucket", "montage-bad")
			cmd.Env = append(cmd.Environ(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("coordinator started with a bad S3 configuration")
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("coordinator neither started nor stopped")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q; want one line containing %q", stderr.String(), tc.want)
			}
		})
	}
}

// An s3://bucket/key source is read through a URL the coordinator presigns
// for the lease; the agent holds no credentials.
func TestS3Source(t *testing.T) {
	c, _ := s3Coordinator(t)
	startAgent(t, c.url, t.TempDir())
	endpoint := ""
	for i, a := range c.args {
		if a == "-s3-endpoint" {
			endpoint = c.args[i+1]
		}
	}
	vods, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: endpoint, Bucket: "vods",
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	put, err := vods.PresignPut("streams/a.mp4", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(mediaDir, "a.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, put, bytes.NewReader(body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload the source: %v %v", resp, err)
	}
	spec := "profile: {resolution: 640x360, fps: 30}\nhighlights:\n  - {url: 's3://vods/streams/a.mp4', at: 2, duration: 3, title: From S3}\n"
	r := ctl(t, c.url, "submit", "--wait", "-q", writeSpec(t, spec))
	if r.code != 0 {
		t.Fatalf("submit --wait: %s %s", r.stdout, r.stderr)
	}
	out := filepath.Join(t.TempDir(), "m.mp4")
	if r := ctl(t, c.url, "download", strings.TrimSpace(r.stdout), "-o", out); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	checkMontage(t, out, []float64{3}, 640, 360, "30/1")
}
