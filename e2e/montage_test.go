package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

func mixedSpec(name string, dur float64) string {
	return fmt.Sprintf(`name: %s
profile:
  resolution: 640x360
  fps: 30
highlights:
  - url: %[2]s/a.mp4
    at: "0:02"
    duration: %[3]g
    title: Opening
  - url: %[2]s/b.m3u8
    at: 5.5
    duration: %[3]g
    title: HLS part
  - url: %[2]s/c.mp4
    at: 0:00:07
    duration: %[3]g
    title: No audio
  - url: %[2]s/b.mp4
    at: 1s
    duration: %[3]g
    title: Mono
`, name, mediaURL, dur)
}

// The whole path with separate processes: montagectl submits and waits, the
// agent renders with ffmpeg, montagectl downloads, ffprobe checks.
func TestMontageEndToEnd(t *testing.T) {
	port := freePort(t)
	c := startCoordinator(t, t.TempDir(), port)
	startAgent(t, c.url, t.TempDir())

	res := ctl(t, c.url, "submit", writeSpec(t, mixedSpec("e2e", 2)), "--wait")
	if res.code != 0 {
		t.Fatalf("submit --wait exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	id := strings.Fields(res.stdout)[1]
	mustContain(t, res.stdout, "succeeded", "submit --wait output")

	out := filepath.Join(t.TempDir(), "montage.mp4")
	if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download exited %d: %s", r.code, r.stderr)
	}
	checkMontage(t, out, []float64{2, 2, 2, 2}, 640, 360, "30/1")
	j := getJob(t, c.url, id)
	checkCommittedOnce(t, j)

	get := ctl(t, c.url, "get", id)
	mustContain(t, get.stdout, "succeeded", "montagectl get")
	list := ctl(t, c.url, "list", "-o", "json")
	mustContain(t, list.stdout, id, "montagectl list -o json")
}

// SIGKILL the coordinator mid-job and restart it on the same data dir:
// nothing is lost and the job completes, each segment committed once.
func TestCoordinatorKilledMidJob(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	c := startCoordinator(t, dir, port, "-lease-ttl", "3s")
	startAgent(t, c.url, t.TempDir())
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, mixedSpec("kill-coordinator", 3)))
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	waitFor(t, 60*time.Second, "one segment committed and another leased", func() bool {
		j, err := tryGetJob(c.url, id)
		if err != nil {
			return false
		}
		done, leased := 0, 0
		for _, task := range j.GetTasks() {
			switch task.GetState() {
			case montagev1.TaskState_TASK_STATE_SUCCEEDED:
				done++
			case montagev1.TaskState_TASK_STATE_LEASED:
				leased++
			}
		}
		return done >= 1 && leased >= 1
	})
	c.kill(syscall.SIGKILL)
	c = c.restart(t)

	j := waitJobDone(t, c.url, id, 120*time.Second)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job ended %s: %s", j.GetState(), j.GetError())
	}
	checkCommittedOnce(t, j)
	// The new leader gave inherited leases a grace period and the agent
	// retried reports the dead coordinator missed: no work was redone.
	for _, task := range j.GetTasks() {
		if task.GetAttempts() != 1 {
			t.Errorf("task %s took %d attempts (last error %q); the restart should cost none", task.GetId(), task.GetAttempts(), task.GetError())
		}
	}
	out := filepath.Join(t.TempDir(), "montage.mp4")
	if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	checkMontage(t, out, []float64{3, 3, 3, 3}, 640, 360, "30/1")
}

// SIGKILL an agent while it renders: its lease expires, a second agent takes
// the task, and the job completes with every segment committed exactly once.
func TestAgentKilledMidTask(t *testing.T) {
	port := freePort(t)
	c := startCoordinator(t, t.TempDir(), port, "-lease-ttl", "2s")
	// A larger frame makes each render take long enough to be caught mid-way.
	spec := fmt.Sprintf(`name: kill-agent
profile: {resolution: 1920x1080, fps: 30, quality: 18}
highlights:
  - {url: %[1]s/a.mp4, at: 1, duration: 8, title: Long one}
  - {url: %[1]s/b.mp4, at: 2, duration: 2, title: Short one}
`, mediaURL)
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, spec))
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	a1 := startAgent(t, c.url, t.TempDir())
	var victim string
	waitFor(t, 60*time.Second, "a render leased to the first agent", func() bool {
		j, err := tryGetJob(c.url, id)
		if err != nil {
			return false
		}
		for _, task := range j.GetTasks() {
			if task.GetState() == montagev1.TaskState_TASK_STATE_LEASED && task.GetType() == montagev1.TaskType_TASK_TYPE_RENDER {
				victim = task.GetId()
				return true
			}
		}
		return false
	})
	a1.kill(syscall.SIGKILL)
	startAgent(t, c.url, t.TempDir())

	j := waitJobDone(t, c.url, id, 120*time.Second)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job ended %s: %s", j.GetState(), j.GetError())
	}
	checkCommittedOnce(t, j)
	for _, task := range j.GetTasks() {
		if task.GetId() == victim && task.GetAttempts() < 2 {
			t.Errorf("task %s was leased to the killed agent but took %d attempt(s); want a second attempt after expiry", victim, task.GetAttempts())
		}
		// The live agent's heartbeats (every TTL/3) keep its leases: no
		// other task may have needed a second attempt.
		if task.GetId() != victim && task.GetAttempts() != 1 {
			t.Errorf("task %s took %d attempts (last error %q); only the killed agent's task should retry", task.GetId(), task.GetAttempts(), task.GetError())
		}
	}
	out := filepath.Join(t.TempDir(), "montage.mp4")
	if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	checkMontage(t, out, []float64{8, 2}, 1920, 1080, "30/1")
}

// A completion carrying a stale lease token is refused, and the attempt that
// replaced it commits once. The test plays two agents over the real API.
func TestStaleLeaseTokenRejected(t *testing.T) {
	port := freePort(t)
	c := startCoordinator(t, t.TempDir(), port, "-lease-ttl", "1s")
	ctx := context.Background()
	ag := agentsClient(c.url)
	for _, id := range []string{"agent-a", "agent-b"} {
		if _, err := ag.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: id, Slots: 1, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
			t.Fatal(err)
		}
	}
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 2}]\n", mediaURL)))
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	lease := func(agent string) *montagev1.Lease {
		r, err := ag.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: 1, WaitSeconds: 5}))
		if err != nil || len(r.Msg.GetLeases()) != 1 {
			t.Fatalf("lease for %s: %v (%d leases)", agent, err, len(r.Msg.GetLeases()))
		}
		return r.Msg.GetLeases()[0]
	}
	la := lease("agent-a")
	// agent-a never heartbeats: its lease expires and agent-b gets the task.
	lb := lease("agent-b")
	if lb.GetTaskId() != la.GetTaskId() || lb.GetToken() <= la.GetToken() {
		t.Fatalf("second lease %s/%d does not supersede %s/%d", lb.GetTaskId(), lb.GetToken(), la.GetTaskId(), la.GetToken())
	}
	body := []byte("segment bytes")
	sum := sha256.Sum256(body)
	put := func(u string) {
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(string(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("put: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	put(la.GetOutputPutUrl())
	put(lb.GetOutputPutUrl())
	result := func(l *montagev1.Lease) *montagev1.TaskResult {
		return &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 2}
	}
	_, err := ag.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent-a", TaskId: la.GetTaskId(), Token: la.GetToken(), Result: result(la)}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("stale completion: got %v, want FailedPrecondition", err)
	}
	_, err = ag.FailTask(ctx, connect.NewRequest(&montagev1.FailTaskRequest{AgentId: "agent-a", TaskId: la.GetTaskId(), Token: la.GetToken(), Error: "zombie"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("stale failure report: got %v, want FailedPrecondition", err)
	}
	_, err = ag.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent-a", TaskId: lb.GetTaskId(), Token: lb.GetToken(), Result: result(lb)}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("completing another agent's lease: got %v, want PermissionDenied", err)
	}
	if _, err := ag.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent-b", TaskId: lb.GetTaskId(), Token: lb.GetToken(), Result: result(lb)})); err != nil {
		t.Fatalf("current completion: %v", err)
	}
	_, err = ag.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent-b", TaskId: lb.GetTaskId(), Token: lb.GetToken(), Result: result(lb)}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("second completion with the same token: got %v, want FailedPrecondition", err)
	}
	j := getJob(t, c.url, lb.GetJobId())
	for _, task := range j.GetTasks() {
		if task.GetId() == lb.GetTaskId() {
			if task.GetCommits() != 1 || task.GetResultKey() != lb.GetOutputKey() {
				t.Errorf("task committed %d times with key %q; want once with %q", task.GetCommits(), task.GetResultKey(), lb.GetOutputKey())
			}
		}
	}
}

// A montage's concat goes to the agent that kept its segments, not to an
// idle agent that asks first: agent B is drained while A renders, and
// comes back while A renders the last segment, so B is waiting for work
// when the concat becomes runnable. The coordinator gives B nothing (its
// debug log says so, for B's poll), and A joins its kept files.
func TestConcatGoesToTheAgentKeepingItsSegments(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-cache-budget", "-1")
	a := startAgent(t, c.url, t.TempDir())
	bDir := t.TempDir()
	startAgent(t, c.url, bDir)
	waitFor(t, 30*time.Second, "both agents registered", func() bool {
		return strings.Count(c.out.String(), "agent registered") >= 2
	})
	raw, err := os.ReadFile(filepath.Join(bDir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	bID := strings.TrimSpace(string(raw))
	cluster := montagev1connect.NewClusterServiceClient(http.DefaultClient, c.url)
	drain := func(on bool) {
		t.Helper()
		if _, err := cluster.DrainAgent(context.Background(), connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: bID, Drain: on})); err != nil {
			t.Fatal(err)
		}
	}
	drain(true)
	spec := fmt.Sprintf("name: keeper\nprofile: {resolution: 1280x720, fps: 30}\nhighlights:\n"+
		"  - {url: %[1]s/a.mp4, at: 1, duration: 8}\n  - {url: %[1]s/a.mp4, at: 10, duration: 8}\n", mediaURL)
	res := ctl(t, c.url, "submit", writeSpec(t, spec), "-q")
	if res.code != 0 {
		t.Fatalf("submit: %s %s", res.stdout, res.stderr)
	}
	id := strings.TrimSpace(res.stdout)
	// A has one slot: its second render has started once the first is done.
	waitFor(t, time.Minute, "A's second render", func() bool {
		return strings.Count(a.out.String(), `msg="task started"`) >= 2
	})
	drain(false)
	waitFor(t, 2*time.Minute, "the job done", func() bool {
		return getJob(t, c.url, id).GetState() == montagev1.JobState_JOB_STATE_SUCCEEDED
	})
	var aID string
	for _, task := range getJob(t, c.url, id).GetTasks() {
		if task.GetType() == montagev1.TaskType_TASK_TYPE_RENDER {
			if aID != "" && task.GetAgentId() != aID {
				t.Fatalf("the renders ran on %s and %s; B was drained", aID, task.GetAgentId())
			}
			aID = task.GetAgentId()
		}
	}
	for _, task := range getJob(t, c.url, id).GetTasks() {
		if task.GetType() == montagev1.TaskType_TASK_TYPE_CONCAT && task.GetAgentId() != aID {
			t.Fatalf("the concat ran on %s, not on %s, which kept the segments", task.GetAgentId(), aID)
		}
	}
	mustContain(t, c.out.String(), `msg="concat waits for an agent keeping its segments" task=`+id+"-concat agent="+bID,
		"coordinator log (B asked while the concat waited for A, and got nothing)")
	mustContain(t, a.out.String(), "segments_local=2", "A's concat log (it joined the segments it kept)")
}
