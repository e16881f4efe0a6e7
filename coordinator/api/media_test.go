package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/blob"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func (h *harness) put(t *testing.T, url, body string) *montagev1.OutputObject {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("put: %v %v", err, resp)
	}
	resp.Body.Close()
	sum := sha256.Sum256([]byte(body))
	return &montagev1.OutputObject{Size: int64(len(body)), Sha256: hex.EncodeToString(sum[:])}
}

// The concat's lease presigns its further outputs; its completion is
// accepted only with exactly those keys, and the job then lists them. A
// render that committed is cached with its source's identity: the same job
// again offers it for reuse, and the agent that finds the source unchanged
// completes it from the cache without rendering.
func TestConcatOutputsAndCache(t *testing.T) {
	h := newHarness(t)
	h.register(t, "a1")
	j := h.submit(t, 1)
	render := h.lease(t, "a1", 1, 1)[0]
	if render.GetRender().GetCachedIdentity() != "" {
		t.Fatalf("first render offered a cached one: %v", render.GetRender())
	}
	const identity = `etag="v1"; size=1000`
	seg := h.put(t, render.GetOutputPutUrl(), "segment bytes")
	if _, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: "a1", TaskId: render.GetTaskId(), Token: render.GetToken(),
		Result: &montagev1.TaskResult{Key: render.GetOutputKey(), Size: seg.GetSize(), Sha256: seg.GetSha256(), DurationSeconds: 5,
			Source: &montagev1.SourceFacts{Identity: identity}},
	})); err != nil {
		t.Fatal(err)
	}
	concat := h.lease(t, "a1", 1, 1)[0]
	if concat.GetType() != montagev1.TaskType_TASK_TYPE_CONCAT || len(concat.GetExtraOutputs()) != 3 {
		t.Fatalf("concat lease %v", concat)
	}
	var extras []*montagev1.OutputObject
	for _, slot := range concat.GetExtraOutputs() {
		if slot.GetKey() != blob.OutputAttemptKey(j.GetId(), slot.GetName(), concat.GetToken()) {
			t.Errorf("slot %s at %s", slot.GetName(), slot.GetKey())
		}
		x := h.put(t, slot.GetPutUrl(), "contents of "+slot.GetName())
		x.Name, x.Key = slot.GetName(), slot.GetKey()
		extras = append(extras, x)
	}
	montage := h.put(t, concat.GetOutputPutUrl(), "montage")
	complete := func(extras []*montagev1.OutputObject) error {
		_, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
			AgentId: "a1", TaskId: concat.GetTaskId(), Token: concat.GetToken(),
			Result: &montagev1.TaskResult{Key: concat.GetOutputKey(), Size: montage.GetSize(), Sha256: montage.GetSha256(),
				DurationSeconds: 5, ExtraOutputs: extras},
		}))
		return err
	}
	wrong := proto.Clone(extras[0]).(*montagev1.OutputObject)
	wrong.Key = render.GetOutputKey() // a real object, but not this attempt's output
	if err := complete([]*montagev1.OutputObject{wrong}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("extra output at a foreign key: %v, want InvalidArgument", err)
	}
	if err := complete(extras); err != nil {
		t.Fatal(err)
	}
	done := h.job(t, j.GetId())
	for _, name := range []string{"montage", "chapters", "thumbnail", "manifest"} {
		if done.GetOutputs()[name] == "" {
			t.Errorf("job outputs %v lack %s", done.GetOutputs(), name)
		}
	}
	var again *montagev1.Lease
	waitUntil(t, "the segment in the cache index", func() bool {
		j := h.submit(t, 1)
		l := h.lease(t, "a1", 1, 1)
		if len(l) == 1 && l[0].GetRender().GetCachedIdentity() == identity {
			again = l[0]
			return true
		}
		_, _ = h.jobs.CancelJob(context.Background(), connect.NewRequest(&montagev1.CancelJobRequest{JobId: j.GetId()}))
		return false
	})
	if _, err := h.agents.CompleteTask(context.Background(), connect.NewRequest(&montagev1.CompleteTaskRequest{
		AgentId: "a1", TaskId: again.GetTaskId(), Token: again.GetToken(), Result: &montagev1.TaskResult{ReuseCache: true},
	})); err != nil {
		t.Fatal(err)
	}
	reused := findTask(h.job(t, again.GetJobId()), again.GetTaskId())
	if !reused.GetCached() || reused.GetState() != montagev1.TaskState_TASK_STATE_SUCCEEDED || !strings.HasPrefix(reused.GetResultKey(), "cache/") {
		t.Errorf("reused render: %v", reused)
	}
}

// A job that forces a hardware family says what it waits for; with an
// agent that proved that encoder the wait ends.
func TestWaitingForAnEncoder(t *testing.T) {
	h := newHarness(t)
	h.register(t, "cpu")
	r, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{
		Profile:    &montagev1.RenderProfile{Hwaccel: "vaapi"},
		Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1"}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Msg.GetJob().GetId()
	if got := h.job(t, id).GetWaitingFor(); !strings.Contains(got, "h264_vaapi") {
		t.Errorf("waiting_for = %q", got)
	}
	if ls := h.lease(t, "cpu", 2, 0.05); len(ls) != 0 {
		t.Errorf("a CPU agent got %v", ls)
	}
	if _, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: "gpu", Slots: 1,
		Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264", "h264_vaapi"}, Hwaccels: []string{"vaapi"}, GpuSessions: 1}})); err != nil {
		t.Fatal(err)
	}
	if got := h.job(t, id).GetWaitingFor(); got != "" {
		t.Errorf("waiting_for = %q with a vaapi agent ready", got)
	}
	gpu := func(free int32) []*montagev1.Lease {
		resp, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "gpu", FreeSlots: 1, FreeGpuSessions: free, WaitSeconds: 0.05}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetLeases()
	}
	if ls := gpu(0); len(ls) != 0 {
		t.Errorf("no free encoder session, yet leased %v", ls)
	}
	if ls := gpu(1); len(ls) != 1 || ls[0].GetProfile().GetEncoder() != "h264_vaapi" {
		t.Errorf("leases %v, want the render with h264_vaapi", ls)
	}
}

// s3:// sources need an S3 store; this harness has the local one.
func TestS3SourceNeedsS3(t *testing.T) {
	h := newHarness(t)
	_, err := h.jobs.SubmitJob(context.Background(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: &montagev1.JobSpec{
		Highlights: []*montagev1.Highlight{{Url: "http://src/v.mp4", At: "1"}, {Url: "s3://vods/a.mp4", At: "1"}},
	}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "highlights[1].url: s3:// sources need") {
		t.Errorf("got %v", err)
	}
}
