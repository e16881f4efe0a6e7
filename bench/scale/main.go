// Command scale loads a 3-node loopback cluster with a farm's worth of
// history and drives it with simulated agents over real HTTP.
//
// It builds the state by applying real commands (submit, grants,
// completions, finalize, purge) to the coordinator's state machine: N
// finished jobs of six tasks each, compacted as the janitor leaves them,
// and Q queued jobs. That state goes into each node's raft snapshot store,
// as a node restored from a snapshot has it, and three montage-coordinator
// processes start from it on a versitygw S3 store. Then A agents (goroutines,
// each with its own HTTP connection) register, long-poll for leases, PUT a
// few bytes through the presigned URLs they are given and complete, until
// every queued job has succeeded. No ffmpeg runs. Figures come from the
// clients' clocks and the coordinators' /metrics and /proc. The last line:
//
//	scale: jobs=N agents=A lease_p50_ms=… lease_p99_ms=… complete_p99_ms=… grants_per_s=… snapshot_s=… snapshot_mb=… restore_s=… apply_stall_max_ms=… rss_mb=…
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/internal/s3test"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type options struct {
	jobs, queued, agents int
	bin, dir             string
}

func run() error {
	var o options
	flag.IntVar(&o.jobs, "jobs", 100000, "finished jobs in the state")
	flag.IntVar(&o.queued, "queued", 1000, "queued jobs the agents work through")
	flag.IntVar(&o.agents, "agents", 200, "simulated agents")
	flag.StringVar(&o.bin, "bin", "bin", "directory with montage-coordinator")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one)")
	flag.Parse()
	if o.dir == "" {
		d, err := os.MkdirTemp("", "montage-scale-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	start := time.Now()
	st, err := buildState(o.jobs, o.queued)
	if err != nil {
		return err
	}
	fmt.Printf("state built: %d jobs (%d live), %d tasks in %.1fs\n", len(st.Jobs), st.Unfinished(), len(st.Tasks), time.Since(start).Seconds())

	s3, stopS3, err := startS3(o)
	if err != nil {
		return err
	}
	defer stopS3()

	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePortRange(); err != nil {
			return err
		}
	}
	servers := make([]raft.Server, 3)
	for i, p := range ports {
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("node-%d", i)), Address: raft.ServerAddress(fmt.Sprintf("127.0.0.1:%d", p+1))}
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}()
	urls := make([]string, 3)
	for i, p := range ports {
		data := filepath.Join(o.dir, fmt.Sprintf("node-%d", i))
		if err := seedSnapshot(data, st, servers); err != nil {
			return err
		}
		var join []string
		for j, q := range ports {
			if j != i {
				join = append(join, fmt.Sprintf("127.0.0.1:%d", q+2))
			}
		}
		logf, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("node-%d.log", i)))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(o.bin, "montage-coordinator"), "-data-dir", data, "-node-id", string(servers[i].ID),
			"-listen", fmt.Sprintf("127.0.0.1:%d", p), "-join", strings.Join(join, ","),
			"-s3-endpoint", s3, "-s3-bucket", "montage-scale", "-snapshot-interval", "5s", "-max-queued-jobs", "100000")
		cmd.Env = append(os.Environ(), "MONTAGE_S3_ACCESS_KEY="+s3test.AccessKey, "MONTAGE_S3_SECRET_KEY="+s3test.SecretKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	leaderURL, err := waitLeader(ctx, urls, 3*time.Minute)
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, o.dir)
	}
	restore := 0.0
	for _, u := range urls {
		restore = max(restore, metric(u, "montage_fsm_restore_seconds"))
	}
	fmt.Printf("cluster up from the snapshot: leader %s, restore %.2fs\n", leaderURL, restore)

	res, err := drive(ctx, leaderURL, o.agents, st)
	if err != nil {
		return err
	}
	// Let the snapshots due after this much writing finish, then read.
	time.Sleep(12 * time.Second)
	var snapS, snapB, stall, rss float64
	for i, u := range urls {
		snapS = max(snapS, metric(u, "montage_fsm_snapshot_write_max_seconds"))
		snapB = max(snapB, metric(u, "montage_fsm_snapshot_bytes"))
		stall = max(stall, metric(u, "montage_fsm_snapshot_pause_max_seconds"))
		rss = max(rss, peakRSS(procs[i].Process.Pid))
	}
	if snapB == 0 {
		return errors.New("no coordinator took a snapshot during the run")
	}
	fmt.Printf("scale: jobs=%d agents=%d lease_p50_ms=%.2f lease_p99_ms=%.2f complete_p99_ms=%.2f grants_per_s=%.0f snapshot_s=%.2f snapshot_mb=%.1f restore_s=%.2f apply_stall_max_ms=%.2f rss_mb=%.0f\n",
		o.jobs, o.agents, pct(res.lease, 50), pct(res.lease, 99), pct(res.complete, 99), res.perSecond,
		snapS, snapB/1e6, restore, stall*1000, rss/1e6)
	return nil
}

// specFor is a realistic job: six highlights of a stream (five renders
// and a concat, as the planner makes them).
func specFor(n int) *montagev1.JobSpec {
	s := &montagev1.JobSpec{Name: fmt.Sprintf("weekly highlights %d", n),
		Profile: &montagev1.RenderProfile{Resolution: "1280x720", Fps: 30, Loudness: "-14"}}
	for i := 0; i < 5; i++ {
		s.Highlights = append(s.Highlights, &montagev1.Highlight{
			Url:      fmt.Sprintf("https://vods.example.com/streamer%03d/2026-11-%02d/vod-%06d.mp4", n%300, 1+n%28, n),
			At:       fmt.Sprintf("%d:%02d:%02d", i, (n+i*7)%60, (n*3+i)%60),
			Duration: strconv.Itoa(20 + (n+i)%40),
			Title:    fmt.Sprintf("Clutch moment %d of stream %d", i+1, n),
		})
	}
	return s
}

// buildState applies the commands a farm would have applied.
func buildState(jobs, queued int) (*fsm.State, error) {
	st := fsm.New()
	idx := uint64(0)
	now := time.Now().UTC()
	at := now.Add(-6 * 24 * time.Hour) // inside the default retention
	step := 6 * 24 * time.Hour / time.Duration(max(1, jobs))
	apply := func(c *fsm.Command) (fsm.Response, error) {
		idx++
		c.At = at
		r := st.Apply(idx, c)
		if r.Err != nil {
			return r, fmt.Errorf("apply %d: %w", idx, r.Err)
		}
		return r, nil
	}
	if _, err := apply(&fsm.Command{Register: &fsm.RegisterCmd{Agent: &fsm.Agent{ID: "history", Slots: 8, Provides: []string{"libx264"}}}}); err != nil {
		return nil, err
	}
	facts, _ := proto.Marshal(&montagev1.SourceFacts{Container: "mov,mp4", VideoCodec: "h264", Width: 1920, Height: 1080, Fps: 60,
		AudioCodec: "aac", SampleRate: 48000, Channels: 2, DurationSeconds: 14400, Identity: `etag:"0a1b2c3d4e5f" size:7340032000`})
	for n := 0; n < jobs+queued; n++ {
		sp := specFor(n)
		resolved, err := spec.Validate(sp)
		if err != nil {
			return nil, fmt.Errorf("spec %d: %w", n, err)
		}
		resolved.Profile.Encoder = "libx264"
		id := fmt.Sprintf("j%011x", n)
		job, tasks, err := planner.Plan(id, sp, resolved, planner.Options{})
		if err != nil {
			return nil, err
		}
		if _, err := apply(&fsm.Command{Submit: &fsm.SubmitCmd{Job: job, Tasks: tasks, IdempotencyKey: "scale-" + id}}); err != nil {
			return nil, err
		}
		if n >= jobs {
			continue
		}
		// The plan lists the renders, then the concat: each granted and
		// completed in that order.
		for _, t := range tasks {
			g, err := apply(&fsm.Command{Grant: &fsm.GrantCmd{TaskID: t.ID, AgentID: "history"}})
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256([]byte(t.ID))
			r := fsm.Result{Key: fmt.Sprintf("jobs/%s/segments/%s-%d.mp4", id, t.ID, g.Token), Size: 48 << 20,
				SHA256: hex.EncodeToString(sum[:]), Duration: 30, Source: facts}
			if _, err := apply(&fsm.Command{Complete: &fsm.CompleteCmd{TaskID: t.ID, AgentID: "history", Token: g.Token, Result: r}}); err != nil {
				return nil, err
			}
		}
		if _, err := apply(&fsm.Command{Finalize: &fsm.FinalizeCmd{JobID: id, Outputs: map[string]string{
			"montage": "jobs/" + id + "/montage.mp4", "chapters": "jobs/" + id + "/chapters.txt",
			"thumbnail": "jobs/" + id + "/thumbnail.jpg", "manifest": "jobs/" + id + "/manifest.json"}}}); err != nil {
			return nil, err
		}
		if _, err := apply(&fsm.Command{PurgeSegments: &fsm.JobCmd{JobID: id}}); err != nil {
			return nil, err
		}
		at = at.Add(step)
	}
	return st, nil
}

// seedSnapshot writes the state as the node's latest raft snapshot.
func seedSnapshot(dataDir string, st *fsm.State, servers []raft.Server) error {
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return err
	}
	_, trans := raft.NewInmemTransport("")
	sink, err := snaps.Create(raft.SnapshotVersionMax, st.AppliedIndex, 1, raft.Configuration{Servers: servers}, 1, trans)
	if err != nil {
		return err
	}
	if err := st.Snapshot(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func freePortRange() (int, error) {
	// The coordinator uses the port and the two after it (raft, gossip).
	for tries := 0; tries < 50; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, q := range []int{p + 1, p + 2} {
			if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", q)); err != nil {
				ok = false
			} else {
				l2.Close()
			}
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no free port range")
}

func startS3(o options) (string, func(), error) {
	var addrs [2]string
	for i := range addrs {
		p, err := freePortRange()
		if err != nil {
			return "", nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	srv, err := s3test.Run(filepath.Join(o.dir, "s3"), addrs[0], addrs[1])
	if err != nil {
		return "", nil, err
	}
	return srv.Endpoint, func() { srv.Stop() }, nil
}

func waitLeader(ctx context.Context, urls []string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, u := range urls {
			c := montagev1connect.NewClusterServiceClient(http.DefaultClient, u)
			r, err := c.GetStatus(ctx, connect.NewRequest(&montagev1.GetStatusRequest{}))
			if err != nil || r.Msg.GetLeaderApi() == "" {
				continue
			}
			if resp, err := http.Get(r.Msg.GetLeaderApi() + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return r.Msg.GetLeaderApi(), nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", errors.New("no leader came up")
}

// metric reads one unlabelled sample from a coordinator's /metrics.
func metric(url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// peakRSS is a process's peak resident memory in bytes (VmHWM).
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

type results struct {
	lease, complete []time.Duration
	perSecond       float64
}

// drive runs the agents until every queued task has completed.
func drive(ctx context.Context, url string, agents int, st *fsm.State) (results, error) {
	want := int64(0)
	for j := range st.LiveJobs() {
		want += int64(len(j.TaskIDs))
	}
	var (
		mu        sync.Mutex
		res       results
		done      atomic.Int64
		grants    atomic.Int64
		errMu     sync.Mutex
		firstErr  error
		wg        sync.WaitGroup
		startedAt = time.Now()
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	for i := 0; i < agents; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One connection an agent, as separate machines have.
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 60 * time.Second}
			c := montagev1connect.NewAgentServiceClient(hc, url)
			id := fmt.Sprintf("sim-%03d", i)
			if _, err := c.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: id, Name: id, Slots: 1,
				Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
				fail(fmt.Errorf("register %s: %w", id, err))
				return
			}
			for ctx.Err() == nil && done.Load() < want {
				t0 := time.Now()
				r, err := c.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: id, FreeSlots: 1, WaitSeconds: 2}))
				took := time.Since(t0)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("lease %s: %w", id, err))
					}
					return
				}
				if len(r.Msg.GetLeases()) == 0 {
					continue
				}
				mu.Lock()
				res.lease = append(res.lease, took)
				mu.Unlock()
				for _, l := range r.Msg.GetLeases() {
					grants.Add(1)
					tc, err := render(ctx, hc, c, id, l)
					if err != nil {
						fail(fmt.Errorf("task %s: %w", l.GetTaskId(), err))
						return
					}
					mu.Lock()
					res.complete = append(res.complete, tc)
					mu.Unlock()
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	elapsed := time.Since(startedAt).Seconds()
	res.perSecond = float64(grants.Load()+done.Load()) / elapsed
	fmt.Printf("agents done: %d tasks (%d grants) in %.1fs\n", done.Load(), grants.Load(), elapsed)
	return res, nil
}

// render is a fake render: a few bytes uploaded as the lease says, then
// the completion, whose latency it returns.
func render(ctx context.Context, hc *http.Client, c montagev1connect.AgentServiceClient, id string, l *montagev1.Lease) (time.Duration, error) {
	body := []byte("fake segment of " + l.GetTaskId())
	h := sha256.Sum256(body)
	sum := hex.EncodeToString(h[:])
	url := l.GetOutputPutUrl()
	if l.GetChecksummedUpload() {
		r, err := c.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{AgentId: id, TaskId: l.GetTaskId(),
			Token: l.GetToken(), Size: int64(len(body)), Sha256: sum}))
		if err != nil {
			return 0, err
		}
		url = r.Msg.GetPutUrl()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if l.GetChecksummedUpload() {
		req.Header.Set("x-amz-checksum-sha256", base64.StdEncoding.EncodeToString(h[:]))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("PUT: HTTP %d", resp.StatusCode)
	}
	t0 := time.Now()
	_, err = c.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: id, TaskId: l.GetTaskId(), Token: l.GetToken(),
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: sum, DurationSeconds: 30}}))
	return time.Since(t0), err
}

func pct(xs []time.Duration, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Microseconds()) / 1000
}
