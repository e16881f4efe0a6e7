package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/blob"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// readBacks counts the store's read-backs; with blind set it proves
// nothing from metadata (a server that ignores upload checksums), and a
// read-back waits for release.
type readBacks struct {
	blob.Store
	blind   bool
	n       atomic.Int64
	release chan struct{}
}

func (r *readBacks) Check(ctx context.Context, key string, c blob.Claim) (bool, error) {
	if r.blind {
		return false, nil
	}
	return r.Store.Check(ctx, key, c)
}

func (r *readBacks) Verify(ctx context.Context, key string, size int64, sum string) error {
	r.n.Add(1)
	if r.release != nil {
		<-r.release
	}
	return r.Store.Verify(ctx, key, size, sum)
}

// putAndReport uploads body and reports claimed as what was uploaded.
func putAndReport(t *testing.T, h *harness, agent string, l *montagev1.Lease, body, claimed string) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, l.GetOutputPutUrl(), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("put: %v %v", err, resp)
	}
	resp.Body.Close()
	sum := sha256.Sum256([]byte(claimed))
	_, err = h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: agent, TaskId: l.GetTaskId(), Token: l.GetToken(),
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: int64(len(claimed)), Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5},
	}))
	return err
}

func taskState(t *testing.T, h *harness, jobID, taskID string) *montagev1.Task {
	t.Helper()
	for _, task := range h.job(t, jobID).GetTasks() {
		if task.GetId() == taskID {
			return task
		}
	}
	t.Fatalf("no task %s", taskID)
	return nil
}

// The local store hashes uploads as it writes them: a completion is
// proven from that record, with no read-back, and a wrong claim is refused.
func TestCompletionCheckedWithoutReadBack(t *testing.T) {
	rb := &readBacks{}
	h := newHarnessStore(t, Config{}, func(s blob.Store) blob.Store { rb.Store = s; return rb })
	h.register(t, "a1")
	j := h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	if err := putAndReport(t, h, "a1", l, "rendered bytes", "other bytes!!!"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("a claim the store's record contradicts: %v", err)
	}
	// The true claim about the same upload is proven and committed.
	sum := sha256.Sum256([]byte("rendered bytes"))
	if _, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(),
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: 14, Sha256: hex.EncodeToString(sum[:]), DurationSeconds: 5},
	})); err != nil {
		t.Fatal(err)
	}
	if st := taskState(t, h, j.GetId(), l.GetTaskId()).GetState(); st != montagev1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("task %s after a proven completion", st)
	}
	if n := rb.n.Load(); n != 0 {
		t.Fatalf("%d read-backs; the store's own record should have decided", n)
	}
}

// On a store that proves nothing, a large result is read back after the
// agent's call returned, with the task in VERIFYING meanwhile; a damaged
// one goes back to the queue with the reason.
func TestLargeResultReadBackOutsideTheCall(t *testing.T) {
	rb := &readBacks{blind: true, release: make(chan struct{})}
	h := newHarnessStore(t, Config{SyncVerifyBytes: 4}, func(s blob.Store) blob.Store { rb.Store = s; return rb })
	h.register(t, "a1")
	j := h.submit(t, 2)
	ls := h.lease(t, "a1", 2, 1)
	if len(ls) != 2 {
		t.Fatalf("%d leases", len(ls))
	}
	good, bad := ls[0], ls[1]
	// The read-back is held until released: the call returns first.
	if err := putAndReport(t, h, "a1", good, "good bytes", "good bytes"); err != nil {
		t.Fatal(err)
	}
	if err := putAndReport(t, h, "a1", bad, "damaged!!!", "good bytes"); err != nil {
		t.Fatal(err)
	}
	if st := taskState(t, h, j.GetId(), good.GetTaskId()).GetState(); st != montagev1.TaskState_TASK_STATE_VERIFYING {
		t.Fatalf("task %s while its read-back waits", st)
	}
	close(rb.release)
	waitUntil(t, "both read-backs recorded", func() bool {
		g := taskState(t, h, j.GetId(), good.GetTaskId())
		b := taskState(t, h, j.GetId(), bad.GetTaskId())
		return g.GetState() == montagev1.TaskState_TASK_STATE_SUCCEEDED && b.GetState() == montagev1.TaskState_TASK_STATE_QUEUED
	})
	b := taskState(t, h, j.GetId(), bad.GetTaskId())
	if !strings.Contains(b.GetError(), "failed verification") || b.GetAttempts() != 1 {
		t.Fatalf("refused result: attempts %d, error %q", b.GetAttempts(), b.GetError())
	}
	if g := taskState(t, h, j.GetId(), good.GetTaskId()); g.GetCommits() != 1 {
		t.Fatalf("verified task committed %d times", g.GetCommits())
	}
}

// A part's checksum that is not a SHA-256 is the agent's mistake, named.
func TestBadPartChecksumNamed(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	h.submit(t, 1)
	l := h.lease(t, "a1", 1, 1)[0]
	_, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: "a1", TaskId: l.GetTaskId(), Token: l.GetToken(),
		Result: &montagev1.TaskResult{Key: l.GetOutputKey(), Size: 3, Sha256: strings.Repeat("a", 64),
			Parts: []*montagev1.UploadedPart{{Number: 1, Etag: "x", Sha256: "not hex"}}},
	}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "result.parts[0].sha256") {
		t.Fatalf("bad part checksum: %v", err)
	}
}
