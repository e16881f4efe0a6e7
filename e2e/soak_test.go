package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/s3test"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// replayed is what a raft log holds from its first entry: the state it
// applies to, the tasks each submission planned, and the completions each
// task's state machine accepted.
type replayed struct {
	state   *fsm.State
	planned map[string][]string // job → its tasks, as submitted
	commits map[string]int
}

func replayLog(t testing.TB, dataDir string) replayed {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft", "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	if first != 1 {
		t.Fatalf("raft log starts at %d (compacted); cannot replay the whole history", first)
	}
	r := replayed{state: fsm.New(), planned: map[string][]string{}, commits: map[string]int{}}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := fsm.Decode(l.Data)
		if err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		resp := r.state.Apply(l.Index, c)
		switch {
		case resp.Err != nil:
		case c.Complete != nil:
			r.commits[c.Complete.TaskID]++
		case c.Submit != nil && !resp.Existing:
			for _, task := range c.Submit.Tasks {
				r.planned[resp.JobID] = append(r.planned[resp.JobID], task.ID)
			}
		}
	}
	return r
}

// soakMinutes is how long the chaos runs: SOAK_MINUTES, unset skips.
func soakMinutes(t *testing.T) time.Duration {
	v := os.Getenv("SOAK_MINUTES")
	if v == "" {
		t.Skip("the chaos soak runs with SOAK_MINUTES set: make soak (10 minutes) or SOAK_MINUTES=2")
	}
	m, err := strconv.ParseFloat(v, 64)
	if err != nil || m <= 0 || m > 24*60 {
		t.Fatalf("SOAK_MINUTES=%q: must be a number of minutes between 0 and 1440", v)
	}
	return time.Duration(m * float64(time.Minute))
}

// TestSoak: three coordinators on versitygw, four agents and a steady
// stream of small jobs, while a chaos loop SIGKILLs or SIGSTOPs one
// coordinator (never two: quorum holds) or one agent every 15–40 s and
// brings it back. Then, from the surviving raft log and the store: every
// job succeeded, every task has exactly one accepted completion, every
// montage plays at its planned length, and nothing is left in the store
// that housekeeping should have removed. The last line it prints is the
// summary `make soak` ends with.
func TestSoak(t *testing.T) {
	runFor := soakMinutes(t)
	// Snapshots are frequent, but the log keeps every entry: the final
	// check replays the whole history, however long the soak.
	h := startHATimed(t, true, "-snapshot-threshold", "256", "-snapshot-interval", "2s", "-raft-trailing-logs", "100000000")
	h.leader(t, 0)
	urls := make([]string, 3)
	for i, c := range h.coords {
		urls[i] = c.url
	}
	var mu sync.Mutex // guards h.coords and agents: the chaos loop replaces them
	agentDirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	agents := make([]*proc, len(agentDirs))
	for i, d := range agentDirs {
		agents[i] = startAgent(t, strings.Join(urls, ","), d)
	}
	store, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: h.s3.Endpoint, Bucket: s3Bucket,
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}

	end := time.Now().Add(runFor)
	var (
		jobsMu    sync.Mutex
		jobIDs    []string
		unsubmit  atomic.Int64
		kills     atomic.Int64
		wg        sync.WaitGroup
		rng       = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		srcs      = []string{"a.mp4", "b.m3u8", "c.mp4", "b.mp4"}
		durations = []float64{2, 2, 2}
	)
	// The job stream: one small job every 4 s, each through any
	// coordinator, retried under its idempotency key until accepted.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; time.Now().Before(end); n++ {
			spec := &montagev1.JobSpec{Name: fmt.Sprintf("soak-%d", n),
				Profile: &montagev1.RenderProfile{Resolution: "320x180", Fps: 30}}
			for i, d := range durations {
				spec.Highlights = append(spec.Highlights, &montagev1.Highlight{
					Url: mediaURL + "/" + srcs[(n+i)%len(srcs)], At: strconv.Itoa(1 + (n+i)%9),
					Duration: strconv.FormatFloat(d, 'f', -1, 64), Title: fmt.Sprintf("H%d", i+1)})
			}
			key := fmt.Sprintf("soak-%d", n)
			var id string
			for try := 0; id == "" && try < 120; try++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := jobsClient(urls[(n+try)%3]).SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: spec, IdempotencyKey: key}))
				cancel()
				if err != nil {
					time.Sleep(500 * time.Millisecond)
					continue
				}
				id = r.Msg.GetJob().GetId()
			}
			if id == "" {
				unsubmit.Add(1)
				t.Errorf("job %s was never accepted", key)
			} else {
				jobsMu.Lock()
				jobIDs = append(jobIDs, id)
				jobsMu.Unlock()
			}
			time.Sleep(4 * time.Second)
		}
	}()
	// The chaos loop.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var blows []int
		for {
			pause := time.Duration(15+rng.IntN(26)) * time.Second
			if time.Now().Add(pause).After(end) {
				return
			}
			time.Sleep(pause)
			// Every four blows hit each kind once, in a random order: a
			// short soak still kills and pauses coordinators and agents.
			if len(blows) == 0 {
				blows = rng.Perm(4)
			}
			blow := blows[0]
			blows = blows[1:]
			stop := blow%2 == 0
			if blow < 2 {
				i := rng.IntN(3)
				mu.Lock()
				c := h.coords[i]
				mu.Unlock()
				if stop {
					// Longer than the election timeout: the others elect
					// a leader; this one wakes up deposed.
					freeze(t, c.proc, fmt.Sprintf("coordinator %d", i), 3*time.Second)
				} else {
					t.Logf("chaos: SIGKILL coordinator %d", i)
					c.kill(syscall.SIGKILL)
					time.Sleep(time.Second)
					nc := c.restart(t)
					mu.Lock()
					h.coords[i] = nc
					mu.Unlock()
				}
				h.leader(t, (i+1)%3) // quorum is whole again before the next blow
			} else {
				i := rng.IntN(len(agents))
				mu.Lock()
				a := agents[i]
				mu.Unlock()
				if stop {
					// Past the lease TTL (3 s): its leases expire and go
					// to others; it wakes holding stale tokens.
					freeze(t, a, fmt.Sprintf("agent %d", i), 5*time.Second)
				} else {
					t.Logf("chaos: SIGKILL agent %d", i)
					a.kill(syscall.SIGKILL)
					na := startAgent(t, strings.Join(urls, ","), agentDirs[i])
					mu.Lock()
					agents[i] = na
					mu.Unlock()
				}
			}
			kills.Add(1)
		}
	}()
	wg.Wait()

	// Every job finishes.
	jobsMu.Lock()
	ids := append([]string(nil), jobIDs...)
	jobsMu.Unlock()
	final := map[string]*montagev1.Job{}
	waitFor(t, 5*time.Minute, "every submitted job finished", func() bool {
		for _, id := range ids {
			if final[id] != nil {
				continue
			}
			for _, u := range urls {
				if j, err := tryGetJob(u, id); err == nil && terminalState(j.GetState()) {
					final[id] = j
					break
				}
			}
		}
		return len(final) == len(ids)
	})
	succeeded, failed := 0, 0
	dir := t.TempDir()
	for _, id := range ids {
		j := final[id]
		if j.GetState() != montagev1.JobState_JOB_STATE_SUCCEEDED {
			failed++
			t.Errorf("job %s: %s: %s", id, j.GetState(), j.GetError())
			continue
		}
		succeeded++
		out := filepath.Join(dir, id+".mp4")
		if r := ctl(t, urls[0], "download", id, "-o", out); r.code != 0 {
			t.Errorf("download %s: %s", id, r.stderr)
			continue
		}
		checkMontage(t, out, durations, 320, 180, "30/1")
		if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(b) > 0 {
			t.Errorf("montage of %s does not decode cleanly: %v %s", id, err, b)
		}
	}

	// Housekeeping catches up: only the stable outputs of finished jobs
	// and the cache's segments remain, and no upload is left open.
	orphans := func(cache map[string]bool) []string {
		var out []string
		keys, err := store.List(context.Background(), "")
		if err != nil {
			return []string{"list: " + err.Error()}
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "cache/") && (cache == nil || cache[k]) {
				continue
			}
			parts := strings.Split(k, "/")
			if len(parts) == 3 && parts[0] == "jobs" && final[parts[1]] != nil && stableOutput(parts[1], k) {
				continue
			}
			out = append(out, k)
		}
		ups, err := store.ListMultipart(context.Background(), "")
		if err != nil {
			return append(out, "list uploads: "+err.Error())
		}
		for _, u := range ups {
			out = append(out, "upload "+u.Key)
		}
		return out
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(orphans(nil)) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}

	// The surviving raft log: stop the coordinators and replay one.
	mu.Lock()
	coords := append([]*coordinator(nil), h.coords...)
	mu.Unlock()
	for _, c := range coords {
		c.kill(syscall.SIGTERM)
	}
	r := replayLog(t, coords[0].dataDir)
	cache := map[string]bool{}
	for _, e := range r.state.Cache {
		cache[e.Object] = true
	}
	left := orphans(cache)
	for _, k := range left {
		t.Errorf("left in the store: %s", k)
	}
	dups := 0
	for _, id := range ids {
		if len(r.planned[id]) == 0 {
			t.Errorf("job %s is not in the raft log", id)
		}
		for _, task := range r.planned[id] {
			switch n := r.commits[task]; {
			case n > 1:
				dups += n - 1
				t.Errorf("task %s: %d accepted completions", task, n)
			case n == 0 && final[id].GetState() == montagev1.JobState_JOB_STATE_SUCCEEDED:
				t.Errorf("task %s of succeeded job %s has no accepted completion", task, id)
			}
		}
	}
	lost := int(unsubmit.Load()) + len(ids) - len(final)
	if len(ids) == 0 || kills.Load() == 0 {
		t.Errorf("the soak ran %d jobs and %d blows: too short to show anything", len(ids), kills.Load())
	}
	fmt.Printf("soak: jobs=%d succeeded=%d failed=%d lost=%d duplicate_completions=%d kills=%d orphans=%d\n",
		len(ids)+int(unsubmit.Load()), succeeded, failed, lost, dups, kills.Load(), len(left))
}

// freeze stops a process (SIGSTOP) for d and lets it go on.
func freeze(t *testing.T, p *proc, what string, d time.Duration) {
	t.Logf("chaos: SIGSTOP %s for %s", what, d)
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
}

func terminalState(s montagev1.JobState) bool {
	return s == montagev1.JobState_JOB_STATE_SUCCEEDED || s == montagev1.JobState_JOB_STATE_FAILED || s == montagev1.JobState_JOB_STATE_CANCELED
}

func stableOutput(jobID, key string) bool {
	for name := range blob.Outputs {
		if blob.OutputKey(jobID, name) == key {
			return true
		}
	}
	return false
}
