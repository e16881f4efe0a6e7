package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/multipart"
	"github.com/stream-montages/montage/internal/s3test"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// BenchmarkLeaseLatency measures LeaseTask round trips over HTTP on a
// 3-node loopback cluster while work is queued: the raft commit of the
// grant plus presigning, asked of the leader directly and of a follower
// (forwarded). It reports the 50th and 99th percentiles.
func BenchmarkLeaseLatency(b *testing.B) {
	m := startMulti(b)
	leader := m.c.Index(m.c.Leader(b, 10*time.Second))
	for _, via := range []struct {
		name string
		idx  int
	}{{"leader", leader}, {"follower", (leader + 1) % 3}} {
		b.Run(via.name, func(b *testing.B) {
			ctx := context.Background()
			jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, m.urls[via.idx])
			agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, m.urls[via.idx])
			agent := "bench-" + via.name
			queueRenders(b, jobs, agents, agent)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: 1, WaitSeconds: 1}))
				lat = append(lat, time.Since(t0))
				if err != nil || len(r.Msg.GetLeases()) != 1 {
					b.Fatalf("lease %d: %v", i, err)
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
		})
	}
}

// BenchmarkCompleteLatency measures CompleteTask round trips on the leader
// of a 3-node loopback cluster: fence check, verification of the uploaded
// segment (a 256 KiB object on the local store), the raft commit and the
// copy into the segment cache. The lease and upload happen outside the
// timed call.
func BenchmarkCompleteLatency(b *testing.B) {
	m := startMulti(b)
	url := m.urls[m.c.Index(m.c.Leader(b, 10*time.Second))]
	ctx := context.Background()
	jobs := montagev1connect.NewJobServiceClient(http.DefaultClient, url)
	agents := montagev1connect.NewAgentServiceClient(http.DefaultClient, url)
	const agent = "bench-complete"
	queueRenders(b, jobs, agents, agent)
	body := bytes.Repeat([]byte("segment "), 32<<10)
	sum := sha256.Sum256(body)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r, err := agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: agent, FreeSlots: 1, WaitSeconds: 1}))
		if err != nil || len(r.Msg.GetLeases()) != 1 {
			b.Fatalf("lease %d: %v", i, err)
		}
		l := r.Msg.GetLeases()[0]
		req, _ := http.NewRequest(http.MethodPut, l.GetOutputPutUrl(), bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			b.Fatalf("put: %v %v", err, resp)
		}
		resp.Body.Close()
		b.StartTimer()
		t0 := time.Now()
		_, err = agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{
			AgentId: agent, TaskId: l.GetTaskId(), Token: l.GetToken(),
			Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5,
				// As a real agent reports it: the completion then also copies
				// the segment into the cache (and checks the copy).
				Source: &montagev1.SourceFacts{Identity: `etag="bench"; size=1000000`}},
		}))
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("complete %d: %v", i, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
}

// queueRenders registers agent and queues b.N renders for it, in jobs of
// up to 500 highlights.
func queueRenders(b *testing.B, jobs montagev1connect.JobServiceClient, agents montagev1connect.AgentServiceClient, agent string) {
	b.Helper()
	ctx := context.Background()
	if _, err := agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: agent, Slots: 1, Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		b.Fatal(err)
	}
	for left := b.N; left > 0; left -= 500 {
		s := &montagev1.JobSpec{}
		for i := 0; i < min(left, 500); i++ {
			s.Highlights = append(s.Highlights, &montagev1.Highlight{Url: "http://src/v.mp4", At: fmt.Sprint(i), Duration: "5"})
		}
		if _, err := jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s})); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompleteBySize measures CompleteTask for a 2 MB result (one
// PUT) and a 2 GB one (128 parts of 16 MiB) on a real versitygw S3 server
// that checks upload checksums. The agent's work (hashing, StartUpload,
// the PUTs, completing the multipart upload) happens outside the timed
// call; what is timed is the check of the stored checksum and the commit.
func BenchmarkCompleteBySize(b *testing.B) {
	srv := s3test.Start(b)
	ctx := context.Background()
	store, err := blob.NewS3(ctx, blob.S3Config{Endpoint: srv.Endpoint, Bucket: "montage-bench", AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	if !store.Checksums() {
		b.Fatal("versitygw should check upload checksums")
	}
	h := newHarnessStore(b, Config{}, func(blob.Store) blob.Store { return store })
	if _, err := h.agents.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a1", Slots: 1,
		Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}})); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int64{2 << 20, 2 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				spec := &montagev1.JobSpec{Name: "big", Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "0", Duration: "30"}}}
				if _, err := h.jobs.SubmitJob(ctx, connect.NewRequest(&montagev1.SubmitJobRequest{Spec: spec})); err != nil {
					b.Fatal(err)
				}
				r, err := h.agents.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, WaitSeconds: 5}))
				if err != nil || len(r.Msg.GetLeases()) != 1 {
					b.Fatalf("lease: %v", err)
				}
				l := r.Msg.GetLeases()[0]
				res := uploadGenerated(b, h, l, size)
				b.StartTimer()
				t0 := time.Now()
				_, err = h.agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Result: res}))
				took = append(took, time.Since(t0))
				b.StopTimer()
				if err != nil {
					b.Fatalf("complete: %v", err)
				}
			}
			sort.Slice(took, func(x, y int) bool { return took[x] < took[y] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
		})
	}
}

// generated fills p with bytes that depend on the part number.
func generated(p []byte, part int) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := uint64(part)<<40 | uint64(i)
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
}

// uploadGenerated uploads size generated bytes as an agent with a
// checksummed lease does: hash every part first, ask StartUpload for URLs
// signed with the sums, PUT each part with its sum.
func uploadGenerated(b *testing.B, h *harness, l *montagev1.Lease, size int64) *montagev1.TaskResult {
	b.Helper()
	ctx := context.Background()
	parted := size > l.GetMultipartThresholdBytes()
	part := size
	if parted {
		part = multipart.PartSize(size, l.GetPartSizeBytes())
	}
	buf := make([]byte, part)
	whole := sha256.New()
	var sums []string
	for n, off := 0, int64(0); off < size; n, off = n+1, off+part {
		p := buf[:min(part, size-off)]
		generated(p, n)
		whole.Write(p)
		s := sha256.Sum256(p)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	res := &montagev1.TaskResult{Key: l.GetOutputKey(), Size: size, Sha256: hex.EncodeToString(whole.Sum(nil)), DurationSeconds: 30}
	req := &montagev1.StartUploadRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Size: size}
	if parted {
		req.PartSha256 = sums
	} else {
		req.Sha256 = sums[0]
	}
	up, err := h.agents.StartUpload(ctx, connect.NewRequest(req))
	if err != nil {
		b.Fatal(err)
	}
	urls := up.Msg.GetPartUrls()
	if !parted {
		urls = []string{up.Msg.GetPutUrl()}
	}
	for n, u := range urls {
		off := int64(n) * part
		p := buf[:min(part, size-off)]
		generated(p, n)
		put, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(p))
		put.Header.Set(blob.ChecksumHeader, blob.B64(sums[n]))
		resp, err := http.DefaultClient.Do(put)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("part %d: %v %v", n+1, err, resp)
		}
		resp.Body.Close()
		if parted {
			res.Parts = append(res.Parts, &montagev1.UploadedPart{Number: int32(n + 1), Etag: strings.Trim(resp.Header.Get("ETag"), `"`), Sha256: sums[n]})
		}
	}
	if parted {
		// As the agent does: it completes the upload itself.
		var list []multipart.Part
		for _, p := range res.Parts {
			list = append(list, multipart.Part{Number: p.GetNumber(), ETag: p.GetEtag(), SHA256: p.GetSha256()})
		}
		doc, err := multipart.CompleteDocument(list)
		if err != nil {
			b.Fatal(err)
		}
		if up.Msg.GetCompleteUrl() == "" {
			b.Fatal("no completion URL for a checksummed upload")
		}
		resp, err := http.Post(up.Msg.GetCompleteUrl(), "application/xml", bytes.NewReader(doc))
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("complete: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	return res
}

// BenchmarkScrape times /metrics on a leader holding n finished jobs: the
// farm's gauges come from counts the state keeps, so the time must not
// grow with n.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			h := newHarnessStore(b, Config{}, nil)
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("job%05d", i)
				sub := &fsm.SubmitCmd{Job: &fsm.Job{ID: id, Name: id}}
				for r := 0; r < 4; r++ {
					sub.Tasks = append(sub.Tasks, &fsm.Task{ID: fmt.Sprintf("%s-r%d", id, r), Type: montagev1.TaskType_TASK_TYPE_RENDER, HighlightIndex: r, MaxAttempts: 2})
				}
				for _, c := range []*fsm.Command{{Submit: sub}, {Cancel: &fsm.CancelCmd{JobID: id}}} {
					if _, err := h.srv.apply(c); err != nil {
						b.Fatal(err)
					}
				}
			}
			if got := h.scrapeB(b); !strings.Contains(got, fmt.Sprintf(`montage_jobs{state="canceled"} %d`, n)) {
				b.Fatalf("the scrape does not count %d canceled jobs", n)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.scrapeB(b)
			}
		})
	}
}

func (h *harness) scrapeB(b *testing.B) string {
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return string(body)
}
