// Package e2e runs the real binaries as separate processes against media
// generated at run time: coordinator, agents and montagectl.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/internal/testmedia"
	"github.com/stream-montages/montage/internal/tlsconf"
	"github.com/stream-montages/montage/internal/tlstest"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

var (
	binDir      string
	mediaURL    string
	mediaDir    string
	mediaBytes  func() int64
	mediaServer *testmedia.Server
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: ffmpeg is required: apt-get install -y ffmpeg (or run `make test`, which installs it)")
		return 1
	}
	tmp, err := os.MkdirTemp("", "montage-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	for name, pkg := range map[string]string{
		"montage-coordinator": "../coordinator",
		"montage-agent":       "../agent",
		"montagectl":          "../ctl",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			return 1
		}
	}
	mediaDir = filepath.Join(tmp, "media")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srcs := []testmedia.Source{
		{Name: "a.mp4", Width: 640, Height: 360, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: 20},
		{Name: "b.mp4", Width: 320, Height: 240, FPS: "25", SampleRate: 44100, Channels: 1, Seconds: 20, HLS: true},
		{Name: "c.mp4", Width: 426, Height: 240, FPS: "60000/1001", Seconds: 20},
	}
	srcs = append(srcs, syncSources...)
	srcs = append(srcs, cutSources...)
	if err := testmedia.GenerateAll(ctx, mediaDir, srcs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(mediaDir, "notvideo.mp4"), bytes.Repeat([]byte("this is not a video\n"), 500), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := testmedia.Serve(mediaDir, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	mediaURL = srv.URL
	mediaBytes = srv.BytesSent.Load
	mediaServer = srv
	return m.Run()
}

// handedOut are the ports freePort gave this test binary: a port closed
// after picking it can come back from the next pick, and two coordinators
// (or a coordinator and a server) would then race for it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func freePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	// The coordinator uses the port and the next two (raft, gossip).
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.ports[p] || handedOut.ports[p+1] || handedOut.ports[p+2] {
			continue
		}
		ok := true
		for _, q := range []int{p + 1, p + 2} {
			l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			handedOut.ports[p], handedOut.ports[p+1], handedOut.ports[p+2] = true, true, true
			return p
		}
	}
	t.Fatal("no free port triple")
	return 0
}

// proc is a running binary whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, name, args...)
}

// startEnv starts a binary with extra environment variables.
func startEnv(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	path := name
	if !filepath.IsAbs(name) {
		path = filepath.Join(binDir, name)
	}
	// The test media are served on loopback, which agents refuse by default.
	if isAgent := strings.HasSuffix(path, "montage-agent") ||
		slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "/montage-agent") }); isAgent && // under taskset
		!slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-allow-sources") }) {
		args = append(args, "-allow-sources", "127.0.0.0/8")
	}
	// Tests run many agents on one machine, each the others' load: none
	// pauses for it (the pausing itself is tested in agent/busy).
	if isAgent := strings.HasSuffix(path, "montage-agent") ||
		slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "/montage-agent") }); isAgent &&
		!slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-busy-cpu") }) && !slices.Contains(args, "-version") {
		args = append(args, "-busy-cpu", "0", "-pause-on-battery=false")
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("---- %s %v output ----\n%s", name, args, tail(p.out.String(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// coordinator is a montage-coordinator process with its address and clients.
type coordinator struct {
	*proc
	url     string
	dataDir string
	port    int
	args    []string
	env     []string
}

func startCoordinator(t testing.TB, dataDir string, port int, extra ...string) *coordinator {
	t.Helper()
	return startCoordinatorEnv(t, nil, dataDir, port, extra...)
}

func startCoordinatorEnv(t testing.TB, env []string, dataDir string, port int, extra ...string) *coordinator {
	t.Helper()
	args := append([]string{"-data-dir", dataDir, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "debug"}, extra...)
	c := &coordinator{proc: startEnv(t, env, "montage-coordinator", args...), url: fmt.Sprintf("http://127.0.0.1:%d", port), dataDir: dataDir, port: port, args: extra, env: env}
	waitFor(t, 30*time.Second, "coordinator ready", func() bool {
		select {
		case <-c.done:
			t.Fatalf("coordinator exited:\n%s", c.out.String())
		default:
		}
		resp, err := http.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// startCoordinatorEnvTLS starts a coordinator serving HTTPS with the test
// CA's certificate and waits until it answers.
func startCoordinatorEnvTLS(t testing.TB, env []string, f tlstest.Files, port int) *coordinator {
	t.Helper()
	args := []string{"-data-dir", t.TempDir(), "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "debug",
		"-tls-cert", f.Cert, "-tls-key", f.Key, "-tls-ca", f.CA}
	c := &coordinator{proc: startEnv(t, env, "montage-coordinator", args...), url: fmt.Sprintf("https://127.0.0.1:%d", port), port: port, env: env}
	cfg, err := tlsconf.Client(f.CA, false)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	waitFor(t, 30*time.Second, "TLS coordinator ready", func() bool {
		resp, err := client.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// waitPolls waits until the coordinator has evaluated n more lease polls
// than it had when called: the proof that an agent asked and was given
// nothing (the second evaluation began after the call, so it saw the state
// as it is now). It needs -log-level debug, which tests use.
func (c *coordinator) waitPolls(t testing.TB, n int) {
	t.Helper()
	count := func() int { return strings.Count(c.out.String(), `msg="lease poll evaluated"`) }
	base := count()
	waitFor(t, time.Minute, fmt.Sprintf("%d more lease polls", n), func() bool { return count() >= base+n })
}

func (c *coordinator) restart(t testing.TB) *coordinator {
	t.Helper()
	return startCoordinatorEnv(t, c.env, c.dataDir, c.port, c.args...)
}

func startAgent(t testing.TB, coordURL, dataDir string) *proc {
	t.Helper()
	return start(t, "montage-agent", "-coordinator", coordURL, "-data-dir", dataDir, "-log-level", "debug")
}

func jobsClient(url string) montagev1connect.JobServiceClient {
	return montagev1connect.NewJobServiceClient(http.DefaultClient, url)
}

func agentsClient(url string) montagev1connect.AgentServiceClient {
	return montagev1connect.NewAgentServiceClient(http.DefaultClient, url)
}

func getJob(t testing.TB, url, id string) *montagev1.Job {
	t.Helper()
	resp, err := jobsClient(url).GetJob(context.Background(), connect.NewRequest(&montagev1.GetJobRequest{JobId: id}))
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return resp.Msg.GetJob()
}

// tryGetJob is getJob for moments when the coordinator may be down.
func tryGetJob(url, id string) (*montagev1.Job, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := jobsClient(url).GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{JobId: id}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetJob(), nil
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitJobDone(t testing.TB, url, id string, timeout time.Duration) *montagev1.Job {
	t.Helper()
	var j *montagev1.Job
	waitFor(t, timeout, "job "+id+" to finish", func() bool {
		got, err := tryGetJob(url, id)
		if err != nil {
			return false
		}
		j = got
		s := j.GetState()
		return s == montagev1.JobState_JOB_STATE_SUCCEEDED || s == montagev1.JobState_JOB_STATE_FAILED || s == montagev1.JobState_JOB_STATE_CANCELED
	})
	return j
}

type ctlResult struct {
	stdout, stderr string
	code           int
}

func ctl(t testing.TB, addr string, args ...string) ctlResult {
	t.Helper()
	return ctlEnv(t, nil, addr, args...)
}

func writeSpec(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// probe is what the tests check in an output file.
type probe struct {
	Streams []struct {
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		RFrameRate string `json:"r_frame_rate"`
		SampleRate string `json:"sample_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
	Chapters []struct {
		StartTime string            `json:"start_time"`
		Tags      map[string]string `json:"tags"`
	} `json:"chapters"`
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-show_chapters", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkMontage asserts the montage has exactly one H.264 and one AAC stream
// at the profile's size and rate, and lasts the sum of the highlights.
func checkMontage(t testing.TB, path string, durations []float64, w, h int, fps string) {
	t.Helper()
	p := ffprobe(t, path)
	var video, audio int
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			video++
			if s.CodecName != "h264" || s.Width != w || s.Height != h || s.RFrameRate != fps {
				t.Errorf("video stream %s %dx%d @%s, want h264 %dx%d @%s", s.CodecName, s.Width, s.Height, s.RFrameRate, w, h, fps)
			}
		case "audio":
			audio++
			if s.CodecName != "aac" || s.SampleRate != "48000" {
				t.Errorf("audio stream %s @%s, want aac @48000", s.CodecName, s.SampleRate)
			}
		}
	}
	if video != 1 || audio != 1 {
		t.Errorf("montage has %d video and %d audio streams, want exactly 1 and 1", video, audio)
	}
	want := 0.0
	for _, d := range durations {
		want += d
	}
	got, _ := strconv.ParseFloat(p.Format.Duration, 64)
	if tol := 0.1 * float64(len(durations)); got < want-tol || got > want+tol {
		t.Errorf("montage lasts %.3f s, want %.3f ± %.1f", got, want, tol)
	}
	if len(p.Chapters) != len(durations) {
		t.Errorf("montage has %d chapters, want %d", len(p.Chapters), len(durations))
	}
}

// checkCommittedOnce asserts every task of a succeeded job committed exactly
// one result.
func checkCommittedOnce(t testing.TB, j *montagev1.Job) {
	t.Helper()
	for _, task := range j.GetTasks() {
		const want = 1 // a reuse of the cache commits through its lease too
		if task.GetCommits() != want || task.GetState() != montagev1.TaskState_TASK_STATE_SUCCEEDED {
			t.Errorf("task %s: state %s, %d commits; want succeeded with exactly %d", task.GetId(), task.GetState(), task.GetCommits(), want)
		}
	}
}

func mustContain(t testing.TB, s, sub, what string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s does not contain %q:\n%s", what, sub, s)
	}
}
