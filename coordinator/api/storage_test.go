package api

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/blob"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func putBytes(t *testing.T, url string, b []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("put: %v %v", err, resp)
	}
	resp.Body.Close()
	return strings.Trim(resp.Header.Get("ETag"), `"`)
}

// A large output goes up in parts through StartUpload; the completion
// carries the parts and the coordinator joins and verifies them.
func TestMultipartCompletion(t *testing.T) {
	h := newHarnessWith(t, Config{MultipartThreshold: 10, PartSize: 8})
	h.register(t, "a1")
	h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	if l.GetMultipartThresholdBytes() != 10 {
		t.Fatalf("lease threshold %d", l.GetMultipartThresholdBytes())
	}
	body := []byte("twenty bytes of data")
	ctx := context.Background()
	// Only the lease holder may open an upload.
	if _, err := h.agents.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken() + 1, Size: 20})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("upload for a stale token: %v", err)
	}
	up, err := h.agents.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Size: int64(len(body))}))
	if err != nil {
		t.Fatal(err)
	}
	if up.Msg.GetPartSize() != 8 || len(up.Msg.GetPartUrls()) != 3 {
		t.Fatalf("upload plan: %v", up.Msg)
	}
	var parts []*montagev1.UploadedPart
	for i, u := range up.Msg.GetPartUrls() {
		chunk := body[i*8 : min((i+1)*8, len(body))]
		parts = append(parts, &montagev1.UploadedPart{Number: int32(i + 1), Etag: putBytes(t, u, chunk)})
	}
	sum := sha256.Sum256(body)
	res := &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5, UploadId: up.Msg.GetUploadId(), Parts: parts}
	bad := &montagev1.TaskResult{Key: res.Key, Size: res.Size, Sha256: res.Sha256, UploadId: res.UploadId,
		Parts: []*montagev1.UploadedPart{parts[0], {Number: 2, Etag: hex.EncodeToString(md5.New().Sum(nil))}, parts[2]}}
	_, err = h.agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Result: bad}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "result.parts") {
		t.Fatalf("completion with a wrong part ETag: %v", err)
	}
	if ups, _ := h.store.ListMultipart(ctx, "jobs/"); len(ups) != 0 {
		t.Errorf("a refused multipart completion left its upload: %v", ups)
	}
	// The agent would now fail the attempt and retry; here, a fresh upload.
	up, _ = h.agents.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Size: int64(len(body))}))
	parts = nil
	for i, u := range up.Msg.GetPartUrls() {
		parts = append(parts, &montagev1.UploadedPart{Number: int32(i + 1), Etag: putBytes(t, u, body[i*8:min((i+1)*8, len(body))])})
	}
	res.UploadId, res.Parts = up.Msg.GetUploadId(), parts
	if _, err := h.agents.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Result: res})); err != nil {
		t.Fatalf("multipart completion: %v", err)
	}
	if err := h.store.Verify(ctx, l.GetOutputKey(), int64(len(body)), res.Sha256); err != nil {
		t.Fatalf("joined object: %v", err)
	}
}

// advanceUntil moves the fake clock a second at a time until cond holds.
func (h *harness) advanceUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, func() bool {
		h.clk.Advance(time.Second)
		return cond()
	})
}

// A succeeded job's montage moves to jobs/JOB/montage.mp4, its segments go,
// and after the retention period the job and all its objects go.
func TestJanitorFinalizesPurgesAndDeletes(t *testing.T) {
	h := newHarnessWith(t, Config{Retention: time.Hour, JanitorInterval: time.Second})
	h.register(t, "a1")
	j := h.submit(t, 2)
	var montageKey string
	for i := 0; i < 2; i++ {
		for _, l := range h.lease(t, "a1", 2, 1) {
			if l.GetType() == montagev1.TaskType_TASK_TYPE_CONCAT {
				montageKey = l.GetOutputKey()
			}
			if err := h.complete(t, "a1", l); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	h.advanceUntil(t, "finalize, purge and compaction", func() bool {
		keys, _ := h.store.List(ctx, blob.JobPrefix(j.GetId()))
		return len(keys) == 1 && keys[0] == blob.OutputKey(j.GetId(), "montage") && h.job(t, j.GetId()).GetTaskSummary() != nil
	})
	got := h.job(t, j.GetId())
	// Compacted: the tasks are gone, a summary and the outputs stay.
	if sm := got.GetTaskSummary(); len(got.GetTasks()) != 0 || sm.GetTasks() != 3 || sm.GetAttempts() != 3 || got.GetProgress() != 1 {
		t.Fatalf("compacted job: %d tasks, summary %v, progress %v", len(got.GetTasks()), sm, got.GetProgress())
	}
	if got.GetOutputs()["montage"] != blob.OutputKey(j.GetId(), "montage") {
		t.Fatalf("outputs after finalize: %v", got.GetOutputs())
	}
	if err := h.store.Verify(ctx, blob.OutputKey(j.GetId(), "montage"), int64(len("bytes of "+montageKey)), sha(t, "bytes of "+montageKey)); err != nil {
		t.Fatalf("stable montage is not the committed one: %v", err)
	}
	if _, err := h.jobs.GetOutputURL(ctx, connect.NewRequest(&montagev1.GetOutputURLRequest{JobId: j.GetId(), Output: "thumbnail"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("missing output: %v", err)
	}
	if _, err := h.jobs.GetOutputURL(ctx, connect.NewRequest(&montagev1.GetOutputURLRequest{JobId: j.GetId(), Output: "secrets"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("unknown output: %v", err)
	}
	h.clk.Advance(time.Hour)
	h.advanceUntil(t, "retention to delete the job", func() bool {
		_, err := h.jobs.GetJob(ctx, connect.NewRequest(&montagev1.GetJobRequest{JobId: j.GetId()}))
		return connect.CodeOf(err) == connect.CodeNotFound
	})
	if keys, _ := h.store.List(ctx, blob.JobPrefix(j.GetId())); len(keys) != 0 {
		t.Errorf("objects left after deletion: %v", keys)
	}
}

func sha(t *testing.T, s string) string {
	t.Helper()
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// An agent that dies mid-upload leaves an unfinished multipart upload; once
// its lease expires the janitor aborts it, and no object ever appears.
func TestOrphanedUploadAbortedAfterExpiry(t *testing.T) {
	h := newHarnessWith(t, Config{MultipartThreshold: 10, PartSize: 8, JanitorInterval: time.Second})
	h.register(t, "a1")
	h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	ctx := context.Background()
	up, err := h.agents.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(), Size: 20}))
	if err != nil {
		t.Fatal(err)
	}
	putBytes(t, up.Msg.GetPartUrls()[0], []byte("partial!"))
	// While the lease lives, the janitor leaves the upload alone.
	for i := 0; i < 3; i++ {
		h.clk.Advance(time.Second)
		if ups, _ := h.store.ListMultipart(ctx, "jobs/"); len(ups) != 1 {
			t.Fatalf("live upload touched: %v", ups)
		}
	}
	h.advanceUntil(t, "orphaned upload aborted", func() bool {
		ups, _ := h.store.ListMultipart(ctx, "jobs/")
		return len(ups) == 0
	})
	if _, err := h.store.Stat(ctx, l.GetOutputKey()); err == nil {
		t.Error("a partial object became visible")
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
