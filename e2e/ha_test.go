package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/internal/s3test"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

type haCluster struct {
	coords []*coordinator
	ids    []string
	s3     *s3test.Server
}

// startHA runs three coordinator processes on one S3 server that find each
// other by gossip and bootstrap together.
func startHA(t testing.TB) *haCluster { return startHATimed(t, true) }

// startHATimed runs the cluster with tightened raft timings (fast) or the
// defaults.
func startHATimed(t testing.TB, fast bool, extra ...string) *haCluster {
	t.Helper()
	return startHAEnv(t, fast, nil, extra...)
}

// startHAEnv is startHATimed with more environment for the coordinators.
func startHAEnv(t testing.TB, fast bool, more []string, extra ...string) *haCluster {
	t.Helper()
	srv := s3test.Start(t)
	ports := []int{freePort(t), freePort(t), freePort(t)}
	env := append(append([]string{}, s3Env...), more...)
	if fast {
		env = append(env, "MONTAGE_FAST_RAFT=1")
	}
	h := &haCluster{s3: srv}
	type started struct{ c *coordinator }
	done := make(chan started, 3)
	for i, p := range ports {
		id := fmt.Sprintf("coord-%d", i)
		h.ids = append(h.ids, id)
		args := []string{"-node-id", id, "-bootstrap-expect", "3", "-join", fmt.Sprintf("127.0.0.1:%d", ports[0]+2),
			"-s3-endpoint", srv.Endpoint, "-s3-bucket", s3Bucket, "-lease-ttl", "3s", "-janitor-interval", "1s", "-purge-delay", "0s"}
		args = append(args, extra...)
		go func() {
			done <- started{c: startCoordinatorEnv(t, env, t.TempDir(), p, args...)}
		}()
	}
	byPort := map[int]*coordinator{}
	for range ports {
		s := <-done
		byPort[s.c.port] = s.c
	}
	for _, p := range ports {
		h.coords = append(h.coords, byPort[p])
	}
	return h
}

func (h *haCluster) status(t testing.TB, url string) *montagev1.GetStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := montagev1connect.NewClusterServiceClient(http.DefaultClient, url).GetStatus(ctx, connect.NewRequest(&montagev1.GetStatusRequest{}))
	if err != nil {
		return nil
	}
	return r.Msg
}

func (h *haCluster) leader(t testing.TB, via int) int {
	t.Helper()
	idx := -1
	waitFor(t, 30*time.Second, "a leader with three voters", func() bool {
		s := h.status(t, h.coords[via].url)
		if s == nil || s.GetLeaderId() == "" {
			return false
		}
		voters := 0
		for _, m := range s.GetMembers() {
			if m.GetVoter() {
				voters++
			}
		}
		for i, id := range h.ids {
			if id == s.GetLeaderId() {
				idx = i
			}
		}
		return voters == 3 && idx >= 0
	})
	return idx
}

// replayCompletions reads a stopped coordinator's raft log from the start and
// replays it, counting the completions that each task's state machine
// accepted: the applied history, not only the final state.
func replayCompletions(t testing.TB, dataDir string) map[string]int {
	t.Helper()
	return replayLog(t, dataDir).commits
}

// Three coordinators and two agents on S3: SIGKILL the leader while tasks
// are leased. The job completes, every render is committed exactly once in
// the raft-applied history, the montage is valid, and montagectl pointed at
// a surviving coordinator works throughout.
func TestLeaderKilledMidJob(t *testing.T) {
	h := startHA(t)
	leader := h.leader(t, 0)
	urls := make([]string, 3)
	for i, c := range h.coords {
		urls[i] = c.url
	}
	startAgent(t, strings.Join(urls, ","), t.TempDir())
	startAgent(t, urls[(leader+1)%3], t.TempDir())
	var hl strings.Builder
	for i := 0; i < 8; i++ {
		src := []string{"a.mp4", "b.m3u8", "c.mp4", "b.mp4"}[i%4]
		fmt.Fprintf(&hl, "  - {url: %s/%s, at: %d, duration: 2, title: H%d}\n", mediaURL, src, 1+i, i+1)
	}
	survivor := (leader + 1) % 3
	// montagectl submit --wait through a follower: its WatchJob stream is
	// forwarded to the leader, breaks when the leader dies, and is reopened.
	watcher := start(t, "montagectl", "--addr", urls[survivor], "submit", "--wait",
		writeSpec(t, "name: ha\nprofile: {resolution: 640x360, fps: 30}\nhighlights:\n"+hl.String()))
	var id string
	waitFor(t, 30*time.Second, "the job id from montagectl", func() bool {
		if f := strings.Fields(watcher.out.String()); len(f) > 1 && f[0] == "job" {
			id = f[1]
		}
		return id != ""
	})
	waitFor(t, 90*time.Second, "renders leased and committed", func() bool {
		j, err := tryGetJob(urls[survivor], id)
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
	h.coords[leader].kill(syscall.SIGKILL)
	// montagectl against a survivor keeps working through the election.
	deadline := time.Now().Add(120 * time.Second)
	var final string
	for time.Now().Before(deadline) {
		r := ctl(t, urls[survivor], "get", id, "-o", "json")
		if r.code != 0 {
			t.Fatalf("montagectl get via a survivor during failover: %s", r.stderr)
		}
		if strings.Contains(r.stdout, "JOB_STATE_SUCCEEDED") || strings.Contains(r.stdout, "JOB_STATE_FAILED") {
			final = r.stdout
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(final, "JOB_STATE_SUCCEEDED") {
		t.Fatalf("job did not succeed:\n%s", final)
	}
	select {
	case <-watcher.done:
	case <-time.After(30 * time.Second):
		t.Fatal("montagectl submit --wait did not end after the job did")
	}
	if code := watcher.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(watcher.out.String(), "succeeded") {
		t.Errorf("montagectl submit --wait across the failover exited %d:\n%s", code, watcher.out.String())
	}
	j := getJob(t, urls[survivor], id)
	checkCommittedOnce(t, j)
	out := filepath.Join(t.TempDir(), "montage.mp4")
	if r := ctl(t, urls[(leader+2)%3], "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download via the other survivor: %s", r.stderr)
	}
	checkMontage(t, out, []float64{2, 2, 2, 2, 2, 2, 2, 2}, 640, 360, "30/1")
	if r := ctl(t, urls[survivor], "cluster", "status"); r.code != 0 || !strings.Contains(r.stdout, "dead") {
		t.Errorf("cluster status after the kill:\n%s%s", r.stdout, r.stderr)
	}
	// The raft-applied history, replayed from a survivor's log.
	h.coords[survivor].kill(syscall.SIGTERM)
	commits := replayCompletions(t, h.coords[survivor].dataDir)
	for _, task := range j.GetTasks() {
		if commits[task.GetId()] != 1 {
			t.Errorf("task %s: %d completions applied in the raft log; want exactly 1", task.GetId(), commits[task.GetId()])
		}
	}
}

// submitHA submits n two-second highlights through coordinator url.
func submitHA(t testing.TB, url string, n int) string {
	t.Helper()
	var hl strings.Builder
	for i := 0; i < n; i++ {
		src := []string{"a.mp4", "b.m3u8", "c.mp4", "b.mp4"}[i%4]
		fmt.Fprintf(&hl, "  - {url: %s/%s, at: %d, duration: 2, title: H%d}\n", mediaURL, src, 1+i, i+1)
	}
	res := ctl(t, url, "submit", "-q", writeSpec(t, "profile: {resolution: 1280x720, fps: 30}\nhighlights:\n"+hl.String()))
	if res.code != 0 {
		t.Fatalf("submit: %s", res.stderr)
	}
	return strings.TrimSpace(res.stdout)
}

// A second failure in the cluster: SIGKILL an agent mid-task. Its lease
// expires, the other agent finishes, each task commits once in the log.
func TestAgentKilledInCluster(t *testing.T) {
	h := startHA(t)
	leader := h.leader(t, 0)
	urls := []string{h.coords[0].url, h.coords[1].url, h.coords[2].url}
	follower := (leader + 1) % 3
	id := submitHA(t, urls[follower], 4)
	victim := startAgent(t, strings.Join(urls, ","), t.TempDir())
	var victimTask string
	waitFor(t, 60*time.Second, "a render leased", func() bool {
		j, err := tryGetJob(urls[follower], id)
		if err != nil {
			return false
		}
		for _, task := range j.GetTasks() {
			if task.GetState() == montagev1.TaskState_TASK_STATE_LEASED {
				victimTask = task.GetId()
				return true
			}
		}
		return false
	})
	victim.kill(syscall.SIGKILL)
	startAgent(t, urls[follower], t.TempDir())
	j := waitJobDone(t, urls[follower], id, 120*time.Second)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job ended %s: %s", j.GetState(), j.GetError())
	}
	checkCommittedOnce(t, j)
	for _, task := range j.GetTasks() {
		if task.GetId() == victimTask && task.GetAttempts() < 2 {
			t.Errorf("the killed agent's task %s took %d attempts; want a retry", victimTask, task.GetAttempts())
		}
	}
	h.coords[follower].kill(syscall.SIGTERM)
	for task, n := range replayCompletions(t, h.coords[follower].dataDir) {
		if n != 1 {
			t.Errorf("task %s: %d completions applied", task, n)
		}
	}
}

// A third: SIGSTOP the leader for longer than the election timeout, then
// SIGCONT it. The others elect a new leader; the old one steps down when it
// wakes, and nothing its stale view proposes (expiries of leases it still
// times, grants) commits: every task still commits exactly once.
func TestLeaderPausedStepsDown(t *testing.T) {
	h := startHA(t)
	leader := h.leader(t, 0)
	urls := []string{h.coords[0].url, h.coords[1].url, h.coords[2].url}
	other := (leader + 1) % 3
	startAgent(t, strings.Join(urls, ","), t.TempDir())
	id := submitHA(t, urls[other], 4)
	waitFor(t, 60*time.Second, "a render leased", func() bool {
		j, err := tryGetJob(urls[other], id)
		if err != nil {
			return false
		}
		for _, task := range j.GetTasks() {
			if task.GetState() == montagev1.TaskState_TASK_STATE_LEASED {
				return true
			}
		}
		return false
	})
	old := h.ids[leader]
	if err := h.coords[leader].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a new leader while the old one is stopped", func() bool {
		s := h.status(t, urls[other])
		return s != nil && s.GetLeaderId() != "" && s.GetLeaderId() != old
	})
	// Stopped for well over the lease TTL: its in-memory lease timers all
	// look expired when it wakes.
	time.Sleep(4 * time.Second)
	if err := h.coords[leader].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the old leader to follow the new one", func() bool {
		s := h.status(t, urls[leader])
		return s != nil && s.GetLeaderId() != "" && s.GetLeaderId() != old
	})
	j := waitJobDone(t, urls[leader], id, 120*time.Second)
	if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job ended %s: %s", j.GetState(), j.GetError())
	}
	checkCommittedOnce(t, j)
	h.coords[leader].kill(syscall.SIGTERM)
	for task, n := range replayCompletions(t, h.coords[leader].dataDir) {
		if n != 1 {
			t.Errorf("task %s: %d completions applied", task, n)
		}
	}
}

// BenchmarkLeaderSIGKILLFailover: three coordinator processes with default
// raft timings; SIGKILL the leader and time the first write (a job
// submission) accepted through a surviving coordinator.
func BenchmarkLeaderSIGKILLFailover(b *testing.B) {
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		h := startHATimed(b, false)
		leader := h.leader(b, 0)
		survivor := h.coords[(leader+1)%3].url
		client := montagev1connect.NewJobServiceClient(http.DefaultClient, survivor)
		spec := &montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Url: "http://127.0.0.1:9/v.mp4", At: "1"}}}
		t0 := time.Now()
		h.coords[leader].kill(syscall.SIGKILL)
		var err error
		for time.Since(t0) < time.Minute {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = client.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: spec, IdempotencyKey: fmt.Sprintf("probe-%d", i)}))
			cancel()
			if err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			b.Fatalf("no write accepted a minute after the SIGKILL: %v", err)
		}
		took = append(took, time.Since(t0))
		b.Logf("run %d: %s", i+1, took[len(took)-1].Round(time.Millisecond))
	}
	sort.Slice(took, func(x, y int) bool { return took[x] < took[y] })
	b.ReportMetric(took[len(took)/2].Seconds(), "s-median-failover")
}
