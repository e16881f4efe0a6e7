package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/coordinator/sched"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func invalid(field, format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func newJobID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "j" + hex.EncodeToString(b)
}

// SubmitJob validates, plans and commits a job.
func (s *Server) SubmitJob(_ context.Context, req *connect.Request[montagev1.SubmitJobRequest]) (*connect.Response[montagev1.SubmitJobResponse], error) {
	key := req.Msg.GetIdempotencyKey()
	if len(key) > 128 {
		return nil, invalid("idempotency_key", "must be at most 128 bytes")
	}
	resolved, err := spec.Validate(req.Msg.GetSpec())
	if err != nil {
		var fe *spec.FieldError
		if errors.As(err, &fe) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fe)
		}
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	hook, err := hookOf(req.Msg.GetWebhookUrl(), req.Msg.GetWebhookSecret())
	if err != nil {
		return nil, err
	}
	if err := s.requireLeader(); err != nil {
		return nil, err
	}
	if key != "" {
		var existing *montagev1.Job
		s.node.View(func(st *fsm.State) {
			if id, ok := st.Idempotency[key]; ok {
				if j := st.Jobs[id]; j != nil {
					existing = jobProto(st, j, s.leases, true)
				}
			}
		})
		if existing != nil {
			return connect.NewResponse(&montagev1.SubmitJobResponse{Job: existing, Existing: true}), nil
		}
	}
	if _, ok := s.store.(blob.SourcePresigner); !ok {
		if field := s3Source(resolved); field != "" {
			return nil, invalid(field, "s3:// sources need a coordinator with an S3 store (-s3-endpoint); this one keeps objects on its disk")
		}
	}
	unfinished := 0
	s.node.View(func(st *fsm.State) {
		resolved.Profile.Encoder = sched.ChooseEncoder(s.onlineAgents(st), resolved.Profile.VideoCodec, resolved.Profile.HWAccel)
		unfinished = st.Unfinished()
	})
	if unfinished >= s.cfg.MaxQueuedJobs {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"the farm has %d unfinished jobs; the limit is %d (-max-queued-jobs): submit again when some have finished", unfinished, s.cfg.MaxQueuedJobs))
	}
	id := newJobID()
	job, tasks, err := planner.Plan(id, req.Msg.GetSpec(), resolved, planner.Options{MaxAttempts: s.cfg.MaxAttempts, MaxTasks: s.cfg.MaxTasksPerJob})
	var tooMany *planner.TooManyTasks
	if errors.As(err, &tooMany) {
		return nil, invalid("chunk_seconds", "%v", err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	if hook != nil {
		job.Webhook = &fsm.Webhook{Hook: *hook}
	}
	resp, err := s.apply(&fsm.Command{Submit: &fsm.SubmitCmd{Job: job, Tasks: tasks, IdempotencyKey: key}})
	if err != nil {
		return nil, err
	}
	if !resp.Existing {
		s.m.submitted.Inc()
		s.log.Info("job submitted", "job", resp.JobID, "name", job.Name, "highlights", len(resolved.Clips))
	}
	out, err := s.job(resp.JobID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.SubmitJobResponse{Job: out, Existing: resp.Existing}), nil
}

// s3Source names the first field that holds an s3:// URL, or "".
func s3Source(r *spec.Resolved) string {
	isS3 := func(u string) bool { return strings.HasPrefix(strings.ToLower(u), "s3:") }
	if r.Intro != nil && isS3(r.Intro.URL) {
		return "intro.url"
	}
	for i, c := range r.Clips {
		if isS3(c.URL) {
			return fmt.Sprintf("highlights[%d].url", i)
		}
	}
	if r.Outro != nil && isS3(r.Outro.URL) {
		return "outro.url"
	}
	return ""
}

// onlineAgents lists the registered agents that are ready and called this
// leader recently. Call it inside View.
func (s *Server) onlineAgents(st *fsm.State) []*fsm.Agent {
	var out []*fsm.Agent
	for id, a := range st.Agents {
		if a.State == montagev1.AgentState_AGENT_STATE_READY && s.lead.Online(id) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) job(id string) (*montagev1.Job, error) {
	if err := s.requireReady(); err != nil {
		return nil, err
	}
	var out *montagev1.Job
	s.node.View(func(st *fsm.State) {
		if j := st.Jobs[id]; j != nil {
			out = jobProto(st, j, s.leases, true)
		}
	})
	if out == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("job %q not found", id))
	}
	return out, nil
}

// GetJob returns one job with its tasks.
func (s *Server) GetJob(_ context.Context, req *connect.Request[montagev1.GetJobRequest]) (*connect.Response[montagev1.GetJobResponse], error) {
	if req.Msg.GetJobId() == "" {
		return nil, invalid("job_id", "is required")
	}
	j, err := s.job(req.Msg.GetJobId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.GetJobResponse{Job: j}), nil
}

// ListJobs returns the newest jobs first, without their tasks.
func (s *Server) ListJobs(_ context.Context, req *connect.Request[montagev1.ListJobsRequest]) (*connect.Response[montagev1.ListJobsResponse], error) {
	limit := int(req.Msg.GetLimit())
	if limit < 0 || limit > 10000 {
		return nil, invalid("limit", "must be between 0 and 10000")
	}
	if limit == 0 {
		limit = 100
	}
	if err := s.requireReady(); err != nil {
		return nil, err
	}
	if req.Msg.GetOffset() < 0 {
		return nil, invalid("offset", "must not be negative")
	}
	out := &montagev1.ListJobsResponse{}
	skip := int(req.Msg.GetOffset())
	s.node.View(func(st *fsm.State) {
		out.Total, out.Unfinished = int32(len(st.Jobs)), int32(st.Unfinished())
		for j := range st.JobsNewestFirst() {
			if skip > 0 {
				skip--
				continue
			}
			if len(out.Jobs) == limit {
				break
			}
			out.Jobs = append(out.Jobs, jobProto(st, j, s.leases, false))
		}
	})
	return connect.NewResponse(out), nil
}

// WatchJob streams the job whenever it changes and ends once it finished.
func (s *Server) WatchJob(ctx context.Context, req *connect.Request[montagev1.WatchJobRequest], stream *connect.ServerStream[montagev1.WatchJobResponse]) error {
	if req.Msg.GetJobId() == "" {
		return invalid("job_id", "is required")
	}
	var last *montagev1.Job
	for {
		changed := s.node.Changed()
		j, err := s.job(req.Msg.GetJobId())
		if err != nil {
			return err
		}
		if last == nil || !proto.Equal(last, j) {
			if err := stream.Send(&montagev1.WatchJobResponse{Job: j}); err != nil {
				return err
			}
			last = j
		}
		if terminal(j.State) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(s.cfg.WatchInterval):
		}
	}
}

func terminal(st montagev1.JobState) bool {
	switch st {
	case montagev1.JobState_JOB_STATE_SUCCEEDED, montagev1.JobState_JOB_STATE_FAILED, montagev1.JobState_JOB_STATE_CANCELED:
		return true
	}
	return false
}

// CancelJob cancels a job; agents learn of it at their next heartbeat.
func (s *Server) CancelJob(_ context.Context, req *connect.Request[montagev1.CancelJobRequest]) (*connect.Response[montagev1.CancelJobResponse], error) {
	if req.Msg.GetJobId() == "" {
		return nil, invalid("job_id", "is required")
	}
	if _, err := s.job(req.Msg.GetJobId()); err != nil {
		return nil, err
	}
	if _, err := s.apply(&fsm.Command{Cancel: &fsm.CancelCmd{JobID: req.Msg.GetJobId()}}); err != nil {
		return nil, err
	}
	j, err := s.job(req.Msg.GetJobId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&montagev1.CancelJobResponse{Job: j}), nil
}

// GetOutputURL presigns a download of one finished output.
func (s *Server) GetOutputURL(ctx context.Context, req *connect.Request[montagev1.GetOutputURLRequest]) (*connect.Response[montagev1.GetOutputURLResponse], error) {
	name := req.Msg.GetOutput()
	if name == "" {
		name = "montage"
	}
	j, err := s.job(req.Msg.GetJobId())
	if err != nil {
		return nil, err
	}
	if _, known := blob.Outputs[name]; !known {
		return nil, invalid("output", "%q is not an output; use montage, srt, vtt, chapters, thumbnail or manifest", name)
	}
	ttl := time.Duration(req.Msg.GetTtlSeconds()) * time.Second
	if ttl < 0 || ttl > 7*24*time.Hour {
		return nil, invalid("ttl_seconds", "must be between 0 and 604800 (7 days)")
	}
	if ttl == 0 {
		ttl = time.Hour
	}
	if _, ok := j.Outputs[name]; !ok {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("job %s has no %q output (state %s)", j.Id, name, j.State))
	}
	// A link must outlive the attempt objects, which are purged after
	// finalize: finalize now if the janitor has not yet, and sign the
	// stable key.
	var (
		key       string
		sum       fsm.Checksum
		finalized bool
	)
	look := func() {
		s.node.View(func(st *fsm.State) {
			if fj := st.Jobs[j.Id]; fj != nil {
				key, sum, finalized = fj.Outputs[name], fj.OutputSums[name], fj.Finalized
			}
		})
	}
	look()
	if !finalized && j.State == montagev1.JobState_JOB_STATE_SUCCEEDED {
		if err := s.requireLeader(); err != nil {
			return nil, err
		}
		if err := s.lead.Finalize(ctx, j.Id); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("finalize job %s before signing a link: %w", j.Id, err))
		}
		look()
	}
	u, err := s.store.PresignGet(key, ttl)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&montagev1.GetOutputURLResponse{Url: u, Key: key, Sha256: sum.SHA256, Size: sum.Size}), nil
}
