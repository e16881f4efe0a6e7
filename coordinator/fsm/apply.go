package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Command is one replicated write. Exactly one of the pointers is set. At is
// the leader's clock when it proposed the command.
type Command struct {
	At       time.Time    `json:"at"`
	Submit   *SubmitCmd   `json:"submit,omitempty"`
	Grant    *GrantCmd    `json:"grant,omitempty"`
	Complete *CompleteCmd `json:"complete,omitempty"`
	Fail     *FailCmd     `json:"fail,omitempty"`
	Expire   *ExpireCmd   `json:"expire,omitempty"`
	Cancel   *CancelCmd   `json:"cancel,omitempty"`
	Register *RegisterCmd `json:"register,omitempty"`
	// Housekeeping of finished jobs, proposed by the leader's janitor after
	// it did the storage work, so every coordinator agrees on what is gone.
	Finalize      *FinalizeCmd `json:"finalize,omitempty"`
	PurgeSegments *JobCmd      `json:"purge_segments,omitempty"`
	MarkDeleting  *JobCmd      `json:"mark_deleting,omitempty"`
	RemoveJob     *JobCmd      `json:"remove_job,omitempty"`
	// AgentState drains or readies an agent (operator's decision).
	AgentState *AgentStateCmd `json:"agent_state,omitempty"`
	// CacheAdd indexes a segment the leader copied into the cache;
	// CacheEvict drops entries before the leader deletes their objects.
	CacheAdd   *CacheEntry    `json:"cache_add,omitempty"`
	CacheEvict *CacheEvictCmd `json:"cache_evict,omitempty"`
	// RemoveAgent forgets an agent that holds no lease (operator's removal
	// or the leader's garbage collection of agents long unseen).
	RemoveAgent *RemoveAgentCmd `json:"remove_agent,omitempty"`
	Enroll      *EnrollCmd      `json:"enroll,omitempty"`
	Schedule    *ScheduleCmd    `json:"schedule,omitempty"`
	// Verified ends the read-back of a result (see CompleteCmd.Verify).
	Verified *VerifiedCmd `json:"verified,omitempty"`
	// Coordinator records where a coordinator serves its API: each new
	// leader proposes its own, so followers can forward to it even while
	// gossip has not told them of it yet.
	Coordinator *CoordinatorCmd `json:"coordinator,omitempty"`
	// The library, its feeds, montage schedules and their fires, and the
	// delivery of jobs' webhooks.
	Highlights      *HighlightsCmd      `json:"highlights,omitempty"`
	Feed            *FeedCmd            `json:"feed,omitempty"`
	MontageSchedule *MontageScheduleCmd `json:"montage_schedule,omitempty"`
	Fire            *FireCmd            `json:"fire,omitempty"`
	Webhook         *WebhookCmd         `json:"webhook,omitempty"`
}

// CoordinatorCmd sets (or, with an empty APIAddr, forgets) a coordinator's
// API address.
type CoordinatorCmd struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr,omitempty"`
}

// RemoveAgentCmd forgets an agent.
type RemoveAgentCmd struct {
	AgentID string `json:"agent_id"`
}

// CacheEvictCmd removes cache entries that no unfinished job needs.
type CacheEvictCmd struct {
	Keys []string `json:"keys"`
}

// AgentStateCmd sets an agent's scheduling state.
type AgentStateCmd struct {
	AgentID string               `json:"agent_id"`
	State   montagev1.AgentState `json:"state"`
}

// FinalizeCmd records that a succeeded job's outputs now live at stable keys.
type FinalizeCmd struct {
	JobID   string            `json:"job_id"`
	Outputs map[string]string `json:"outputs"`
}

// JobCmd names one job.
type JobCmd struct {
	JobID string `json:"job_id"`
}

// SubmitCmd adds a planned job and its tasks.
type SubmitCmd struct {
	Job            *Job    `json:"job"`
	Tasks          []*Task `json:"tasks"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`
}

// GrantCmd leases a task to an agent. The raft index of this command becomes
// the lease token.
type GrantCmd struct {
	TaskID  string `json:"task_id"`
	AgentID string `json:"agent_id"`
}

// CompleteCmd commits a task's result under its lease token. ReuseCache
// commits the task's cache entry as its result instead (its agent found the
// source unchanged).
type CompleteCmd struct {
	TaskID     string `json:"task_id"`
	AgentID    string `json:"agent_id"`
	Token      uint64 `json:"token"`
	Result     Result `json:"result"`
	ReuseCache bool   `json:"reuse_cache,omitempty"`
	// Verify: the store could not prove the result from its metadata; the
	// task waits in VERIFYING for the leader to read it back.
	Verify bool `json:"verify,omitempty"`
}

// VerifiedCmd reports the read-back of a VERIFYING task's result, under
// the token of the lease that made it. The limits are FailCmd's.
type VerifiedCmd struct {
	TaskID          string `json:"task_id"`
	Token           uint64 `json:"token"`
	OK              bool   `json:"ok"`
	Error           string `json:"error,omitempty"`
	BlockAfter      int    `json:"block_after,omitempty"`
	QuarantineAfter int    `json:"quarantine_after,omitempty"`
}

// FailCmd ends an attempt. Handback (the agent shut down, or the lease was
// lost by no fault of the task: a grant the agent never received, a lease
// the coordinator could not build) does not use up an attempt and counts
// against no agent.
type FailCmd struct {
	TaskID   string `json:"task_id"`
	AgentID  string `json:"agent_id"`
	Token    uint64 `json:"token"`
	Error    string `json:"error"`
	Handback bool   `json:"handback,omitempty"`
	// Final: the input can never work (say, a keyframe cut of sources that
	// do not match); the task fails now, whatever attempts it has left,
	// and the agent is not blamed.
	Final bool `json:"final,omitempty"`
	// The leader's limits, carried so every replica applies the same:
	// failures of one job before an agent is blocked from it, and failures
	// in a row before an agent is quarantined (0: 3 and 5).
	BlockAfter      int `json:"block_after,omitempty"`
	QuarantineAfter int `json:"quarantine_after,omitempty"`
}

// Defaults of FailCmd's limits (as in Flamenco: 3 failures of a job block
// a worker from it).
const (
	DefaultBlockAfter      = 3
	DefaultQuarantineAfter = 5
)

// ExpireCmd ends a lease whose agent stopped renewing it.
type ExpireCmd struct {
	TaskID string `json:"task_id"`
	Token  uint64 `json:"token"`
}

// CancelCmd cancels a job and all its unfinished tasks.
type CancelCmd struct {
	JobID string `json:"job_id"`
}

// RegisterCmd adds or updates an agent.
type RegisterCmd struct {
	Agent *Agent `json:"agent"`
	// Enroll is the hash of the one-time token the agent presented
	// instead of the join token; it is spent by this registration.
	Enroll string `json:"enroll,omitempty"`
}

// ScheduleCmd sets an agent's working hours (text checked by the API).
type ScheduleCmd struct {
	AgentID  string        `json:"agent_id"`
	Schedule string        `json:"schedule"`
	Grace    time.Duration `json:"grace,omitempty"`
}

// EnrollCmd records a one-time registration token.
type EnrollCmd struct {
	Hash      string    `json:"hash"`
	Name      string    `json:"name,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Response is what Apply returns to the proposer.
type Response struct {
	Err      error
	Token    uint64
	JobID    string
	Existing bool
	// Evicted lists the cache keys a CacheEvict removed (others were in use).
	Evicted []string
	// Ended lists the final states of the jobs this command finished, so
	// the leader that proposed it counts each job's end exactly once.
	Ended []montagev1.JobState
	// What a HighlightsCmd did, and the jobs a FireCmd submitted.
	Added, Updated, Unchanged, Removed int
	Jobs                               []string
}

// Encode serialises a command for the raft log.
func (c *Command) Encode() ([]byte, error) { return json.Marshal(c) }

// Decode reads a command from the raft log.
func Decode(b []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return &c, nil
}

// Apply applies one command at raft index idx.
func (s *State) Apply(idx uint64, c *Command) Response {
	resp := s.apply(idx, c)
	resp.Ended, s.ix.ended = s.ix.ended, nil
	return resp
}

func (s *State) apply(idx uint64, c *Command) Response {
	if idx > s.AppliedIndex {
		s.AppliedIndex = idx
	}
	switch {
	case c.Submit != nil:
		return s.submit(idx, c.At, c.Submit)
	case c.Grant != nil:
		return s.grant(idx, c.At, c.Grant)
	case c.Complete != nil:
		return s.complete(c.At, c.Complete)
	case c.Verified != nil:
		return s.verified(c.At, c.Verified)
	case c.Fail != nil:
		return s.fail(c.At, c.Fail)
	case c.Expire != nil:
		return s.expire(c.At, c.Expire)
	case c.Cancel != nil:
		return s.cancel(c.At, c.Cancel)
	case c.Register != nil:
		return s.register(c.At, c.Register)
	case c.Enroll != nil:
		return s.enroll(c.At, c.Enroll)
	case c.Highlights != nil:
		return s.highlights(c.At, c.Highlights)
	case c.Feed != nil:
		return s.feed(c.Feed)
	case c.MontageSchedule != nil:
		return s.montageSchedule(c.MontageSchedule)
	case c.Fire != nil:
		return s.fire(idx, c.At, c.Fire)
	case c.Webhook != nil:
		return s.webhook(c.At, c.Webhook)
	case c.Coordinator != nil:
		if c.Coordinator.ID == "" {
			return Response{Err: fmt.Errorf("coordinator: empty id: %w", ErrBadCommand)}
		}
		if c.Coordinator.APIAddr == "" {
			delete(s.Coordinators, c.Coordinator.ID)
		} else {
			s.Coordinators[c.Coordinator.ID] = c.Coordinator.APIAddr
		}
		return Response{}
	case c.Schedule != nil:
		a := s.agent(c.Schedule.AgentID)
		if a == nil {
			return Response{Err: fmt.Errorf("agent %s: %w", c.Schedule.AgentID, ErrAgentUnknown)}
		}
		a.Schedule, a.ScheduleGrace = c.Schedule.Schedule, c.Schedule.Grace
		// Opening hours change who may take work: wake every poll.
		s.ix.any = true
		return Response{}
	case c.Finalize != nil:
		return s.finalize(c.At, c.Finalize)
	case c.PurgeSegments != nil:
		return s.housekeep(c.At, c.PurgeSegments.JobID, s.compact)
	case c.MarkDeleting != nil:
		return s.housekeep(c.At, c.MarkDeleting.JobID, func(j *Job) { j.Deleting = true })
	case c.RemoveJob != nil:
		r := s.removeJob(c.RemoveJob.JobID)
		if r.Err == nil {
			s.mediaExpired(c.At, c.RemoveJob.JobID)
		}
		return r
	case c.CacheAdd != nil:
		return s.cacheAdd(c.At, c.CacheAdd)
	case c.CacheEvict != nil:
		return s.cacheEvict(c.CacheEvict)
	case c.AgentState != nil:
		a := s.agent(c.AgentState.AgentID)
		if a == nil {
			return Response{Err: fmt.Errorf("agent %s: %w", c.AgentState.AgentID, ErrAgentUnknown)}
		}
		a.State = c.AgentState.State
		if a.State == montagev1.AgentState_AGENT_STATE_READY {
			// Undrain is also how an operator lifts a quarantine.
			a.FailStreak, a.StateReason = 0, ""
		}
		s.ix.touched = append(s.ix.touched, a.ID)
		return Response{}
	case c.RemoveAgent != nil:
		return s.removeAgent(c.RemoveAgent.AgentID)
	}
	return Response{Err: ErrBadCommand}
}

func (s *State) submit(idx uint64, at time.Time, c *SubmitCmd) Response {
	if c.Job == nil || c.Job.ID == "" {
		return Response{Err: fmt.Errorf("%w: submit without job", ErrBadCommand)}
	}
	if c.IdempotencyKey != "" {
		if id, ok := s.Idempotency[c.IdempotencyKey]; ok {
			return Response{JobID: id, Existing: true}
		}
	}
	if _, ok := s.Jobs[c.Job.ID]; ok {
		return Response{Err: fmt.Errorf("%w: job %s exists", ErrBadCommand, c.Job.ID)}
	}
	j := *c.Job
	j.gen = s.gen
	j.State = montagev1.JobState_JOB_STATE_QUEUED
	j.CreatedAt, j.UpdatedAt, j.Seq = at, at, idx
	j.TaskIDs = nil
	j.Summary = nil
	j.IdempotencyKey = c.IdempotencyKey
	for _, t := range c.Tasks {
		if _, ok := s.Tasks[t.ID]; ok || t.ID == "" {
			return Response{Err: fmt.Errorf("%w: task %q of job %s exists", ErrBadCommand, t.ID, j.ID)}
		}
	}
	for i, t := range c.Tasks {
		tc := *t
		tc.gen, tc.pos = s.gen, i
		tc.JobID = j.ID
		tc.State = montagev1.TaskState_TASK_STATE_QUEUED
		tc.UpdatedAt = at
		// A render the cache holds may be reused: its agent checks that
		// the source has not changed since, and then renders nothing.
		if k := s.CacheLatest[tc.CacheKey]; tc.CacheKey != "" && k != "" && s.Cache[k] != nil {
			tc.CacheEntry = k
			s.cacheEntry(k).UsedAt = at
		}
		s.Tasks[tc.ID] = &tc
		s.indexPlan(&tc)
		j.TaskIDs = append(j.TaskIDs, tc.ID)
	}
	s.Jobs[j.ID] = &j
	s.ix.order.Append(&j, s.gen) // Seq is the raft index: newest last
	if c.IdempotencyKey != "" {
		s.Idempotency[c.IdempotencyKey] = j.ID
	}
	s.refreshJob(&j)
	return Response{JobID: j.ID}
}

func (s *State) grant(idx uint64, at time.Time, c *GrantCmd) Response {
	t := s.Tasks[c.TaskID]
	if t == nil {
		return Response{Err: fmt.Errorf("task %s: %w", c.TaskID, ErrNotFound)}
	}
	a := s.Agents[c.AgentID]
	if a == nil {
		return Response{Err: fmt.Errorf("agent %s: %w", c.AgentID, ErrAgentUnknown)}
	}
	j := s.Jobs[t.JobID]
	if j == nil || j.Terminal() || t.State != montagev1.TaskState_TASK_STATE_QUEUED || !s.DepsDone(t) {
		return Response{Err: fmt.Errorf("task %s: %w", c.TaskID, ErrNotRunnable)}
	}
	if a.State != montagev1.AgentState_AGENT_STATE_READY || j.BlocksAgent(a.ID) {
		return Response{Err: fmt.Errorf("task %s for agent %s (%s): %w", c.TaskID, a.ID, a.State, ErrNotRunnable)}
	}
	t, j = s.task(t.ID), s.job(j.ID)
	t.State = montagev1.TaskState_TASK_STATE_LEASED
	t.Attempts++
	t.LeaseToken = idx
	t.AgentID = c.AgentID
	t.LeasedAt = at
	t.UpdatedAt = at
	if j.State == montagev1.JobState_JOB_STATE_QUEUED {
		j.State = montagev1.JobState_JOB_STATE_RUNNING
	}
	j.UpdatedAt = at
	s.refresh(j, t)
	return Response{Token: idx, JobID: j.ID}
}

// Fence is the one check that a report or a transfer concerns the current
// lease: the task is leased under token, to agentID ("" skips the agent,
// for the leader's own expiry). Everything that acts for a lease (Apply,
// the API's presigning and verification, heartbeats) asks it.
func (s *State) Fence(taskID, agentID string, token uint64) (*Task, error) {
	t := s.Tasks[taskID]
	if t == nil {
		return nil, fmt.Errorf("task %s: %w", taskID, ErrNotFound)
	}
	if t.State != montagev1.TaskState_TASK_STATE_LEASED || t.LeaseToken != token {
		return nil, fmt.Errorf("task %s token %d (current %d, %s): %w", taskID, token, t.LeaseToken, stateName(t.State), ErrStaleLease)
	}
	if agentID != "" && t.AgentID != agentID {
		return nil, fmt.Errorf("task %s: %w", taskID, ErrWrongAgent)
	}
	return t, nil
}

func (s *State) complete(at time.Time, c *CompleteCmd) Response {
	t, err := s.Fence(c.TaskID, c.AgentID, c.Token)
	if err != nil {
		return Response{Err: err}
	}
	t = s.task(t.ID)
	r := c.Result
	if c.ReuseCache {
		e := s.cacheEntry(t.CacheEntry)
		if e == nil {
			return Response{Err: fmt.Errorf("task %s: its cache entry is gone: %w", t.ID, ErrNotRunnable)}
		}
		r = Result{Key: e.Object, Size: e.Size, SHA256: e.SHA256, Duration: e.Duration, Source: e.Source}
		t.Cached = true
		e.UsedAt = at
	}
	if c.Verify {
		// The agent is done; the result waits for the leader to read it
		// back (VerifiedCmd), keeping the lease's token as its fence.
		t.State = montagev1.TaskState_TASK_STATE_VERIFYING
		t.Result = &r
		t.UpdatedAt = at
		s.refresh(s.Jobs[t.JobID], t)
		return Response{JobID: t.JobID}
	}
	return s.succeed(at, t, r)
}

// succeed commits r as the (writable) task's result.
func (s *State) succeed(at time.Time, t *Task, r Result) Response {
	if a := s.Agents[t.AgentID]; a != nil && a.FailStreak != 0 {
		s.agent(a.ID).FailStreak = 0
	}
	t.State = montagev1.TaskState_TASK_STATE_SUCCEEDED
	t.Result = &r
	t.Commits++
	t.Error = ""
	t.UpdatedAt = at
	j := s.job(t.JobID)
	if j == nil {
		return Response{}
	}
	j.UpdatedAt = at
	if r.Warning != "" {
		j.Warnings = append(j.Warnings, fmt.Sprintf("%s: %s", describe(t), firstLine(r.Warning)))
	}
	if t.Type == montagev1.TaskType_TASK_TYPE_CONCAT {
		if j.Outputs == nil {
			j.Outputs = map[string]string{}
		}
		for name, key := range r.Outputs {
			j.Outputs[name] = key
		}
		j.Outputs["montage"] = r.Key
		j.OutputSums = map[string]Checksum{"montage": {Size: r.Size, SHA256: r.SHA256}}
		for name, c := range r.OutputSums {
			j.OutputSums[name] = c
		}
	}
	done := true
	for _, id := range j.TaskIDs {
		if dt := s.Tasks[id]; dt.State != montagev1.TaskState_TASK_STATE_SUCCEEDED && !(dt.Optional && dt.State == montagev1.TaskState_TASK_STATE_FAILED) {
			done = false
			break
		}
	}
	if done {
		j.State = montagev1.JobState_JOB_STATE_SUCCEEDED
		j.FinishedAt = at
		s.catalog(j)
	}
	s.refresh(j, t)
	return Response{JobID: j.ID}
}

// verified ends a result's read-back: it succeeds, or the attempt fails
// as if the agent had reported the damage.
func (s *State) verified(at time.Time, c *VerifiedCmd) Response {
	t := s.Tasks[c.TaskID]
	if t == nil {
		return Response{Err: fmt.Errorf("task %s: %w", c.TaskID, ErrNotFound)}
	}
	if t.State != montagev1.TaskState_TASK_STATE_VERIFYING || t.LeaseToken != c.Token || t.Result == nil {
		return Response{Err: fmt.Errorf("task %s token %d (current %d, %s): %w", c.TaskID, c.Token, t.LeaseToken, stateName(t.State), ErrStaleLease)}
	}
	t = s.task(t.ID)
	if c.OK {
		return s.succeed(at, t, *t.Result)
	}
	t.Result = nil
	s.countFailure(t, t.AgentID, &FailCmd{Error: c.Error, BlockAfter: c.BlockAfter, QuarantineAfter: c.QuarantineAfter})
	s.endAttempt(at, t, "its result failed verification: "+c.Error, false)
	return Response{JobID: t.JobID}
}

func (s *State) fail(at time.Time, c *FailCmd) Response {
	t, err := s.Fence(c.TaskID, c.AgentID, c.Token)
	if err != nil {
		return Response{Err: err}
	}
	t = s.task(t.ID)
	// An optional task's failures (a transcription service's) say nothing
	// of the agent: they neither block nor quarantine it.
	if !c.Handback && !c.Final && !t.Optional {
		s.countFailure(t, t.AgentID, c)
	}
	if c.Final && !c.Handback {
		t.MaxAttempts = t.Attempts
	}
	s.endAttempt(at, t, c.Error, c.Handback)
	return Response{JobID: t.JobID}
}

// countFailure keeps Flamenco's books: an agent that fails BlockAfter
// attempts of a job is blocked from that job; one that fails
// QuarantineAfter in a row is quarantined. A task that fails on two agents
// is the source's fault, not theirs: its failures leave their streaks.
func (s *State) countFailure(t *Task, agentID string, c *FailCmd) {
	blockAfter, quarantineAfter := c.BlockAfter, c.QuarantineAfter
	if blockAfter <= 0 {
		blockAfter = DefaultBlockAfter
	}
	if quarantineAfter <= 0 {
		quarantineAfter = DefaultQuarantineAfter
	}
	if j := s.job(t.JobID); j != nil {
		if j.Failures == nil {
			j.Failures = map[string]int{}
		}
		j.Failures[agentID]++
		if j.Failures[agentID] >= blockAfter && !j.BlocksAgent(agentID) {
			j.Blocked = append(j.Blocked, agentID)
			sort.Strings(j.Blocked)
		}
	}
	if t.FailCounts == nil {
		t.FailCounts = map[string]int{}
	}
	others := false
	for id := range t.FailCounts {
		others = others || id != agentID
	}
	t.FailCounts[agentID]++
	a := s.agent(agentID)
	switch {
	case t.SourceSuspect:
	case others:
		t.SourceSuspect = true
		for id, n := range t.FailCounts {
			if o := s.agent(id); o != nil && id != agentID {
				o.FailStreak = max(0, o.FailStreak-n)
			}
		}
	case a != nil:
		a.FailStreak++
		if a.FailStreak >= quarantineAfter && a.State == montagev1.AgentState_AGENT_STATE_READY {
			a.State = montagev1.AgentState_AGENT_STATE_QUARANTINED
			a.StateReason = fmt.Sprintf("failed %d tasks in a row, the last: %s", a.FailStreak, firstLine(c.Error))
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// removeAgent forgets an agent that holds no lease.
func (s *State) removeAgent(id string) Response {
	if s.Agents[id] == nil {
		return Response{Err: fmt.Errorf("agent %s: %w", id, ErrAgentUnknown)}
	}
	for _, t := range s.LeasedTasks() {
		if t.AgentID == id {
			return Response{Err: fmt.Errorf("agent %s holds task %s: %w", id, t.ID, ErrAgentBusy)}
		}
	}
	delete(s.Agents, id)
	return Response{}
}

func (s *State) expire(at time.Time, c *ExpireCmd) Response {
	t, err := s.Fence(c.TaskID, "", c.Token)
	if err != nil {
		return Response{Err: err}
	}
	t = s.task(t.ID)
	s.endAttempt(at, t, fmt.Sprintf("lease expired: agent %s stopped renewing it", t.AgentID), false)
	return Response{JobID: t.JobID}
}

// endAttempt puts a task (writable) back in the queue or, past its attempt
// limit, fails it and its job.
func (s *State) endAttempt(at time.Time, t *Task, msg string, handback bool) {
	defer func() { s.refresh(s.Jobs[t.JobID], t) }()
	t.LeaseToken = 0
	t.AgentID = ""
	t.UpdatedAt = at
	if handback {
		t.Attempts--
		t.State = montagev1.TaskState_TASK_STATE_QUEUED
		return
	}
	t.Error = msg
	if t.Attempts < t.MaxAttempts {
		t.State = montagev1.TaskState_TASK_STATE_QUEUED
		return
	}
	t.State = montagev1.TaskState_TASK_STATE_FAILED
	j := s.Jobs[t.JobID]
	if j == nil || j.Terminal() {
		return
	}
	j = s.job(j.ID)
	if t.Optional {
		j.Warnings = append(j.Warnings, fmt.Sprintf("%s failed after %d attempts: %s", describe(t), t.Attempts, firstLine(msg)))
		j.UpdatedAt = at
		return
	}
	j.State = montagev1.JobState_JOB_STATE_FAILED
	j.Error = fmt.Sprintf("%s failed after %d attempts: %s", describe(t), t.Attempts, msg)
	j.UpdatedAt = at
	j.FinishedAt = at
	s.cancelRest(at, j)
}

// describe names a task as people count highlights: from 1, as
// montagectl's task list does.
func describe(t *Task) string {
	what := fmt.Sprintf("highlight %d", t.HighlightIndex+1)
	if t.Role == "intro" || t.Role == "outro" {
		what = "the " + t.Role
	}
	switch t.Type {
	case montagev1.TaskType_TASK_TYPE_RENDER:
		return fmt.Sprintf("render of %s (task %s)", what, t.ID)
	case montagev1.TaskType_TASK_TYPE_TRANSCRIBE:
		return fmt.Sprintf("transcript of %s (task %s)", what, t.ID)
	}
	return fmt.Sprintf("concat (task %s)", t.ID)
}

func (s *State) cancelRest(at time.Time, j *Job) {
	for _, id := range j.TaskIDs {
		switch s.Tasks[id].State {
		case montagev1.TaskState_TASK_STATE_QUEUED, montagev1.TaskState_TASK_STATE_LEASED, montagev1.TaskState_TASK_STATE_VERIFYING:
			t := s.task(id)
			t.State = montagev1.TaskState_TASK_STATE_CANCELED
			t.LeaseToken = 0
			t.AgentID = ""
			t.UpdatedAt = at
		}
	}
}

func (s *State) cancel(at time.Time, c *CancelCmd) Response {
	j := s.Jobs[c.JobID]
	if j == nil {
		return Response{Err: fmt.Errorf("job %s: %w", c.JobID, ErrNotFound)}
	}
	if j.Terminal() {
		return Response{JobID: j.ID, Err: fmt.Errorf("job %s is %s: %w", j.ID, jobStateName(j.State), ErrJobFinished)}
	}
	j = s.job(j.ID)
	j.State = montagev1.JobState_JOB_STATE_CANCELED
	j.UpdatedAt = at
	j.FinishedAt = at
	s.cancelRest(at, j)
	s.refreshJob(j)
	return Response{JobID: j.ID}
}

func (s *State) finalize(at time.Time, c *FinalizeCmd) Response {
	j := s.Jobs[c.JobID]
	if j == nil {
		return Response{Err: fmt.Errorf("job %s: %w", c.JobID, ErrNotFound)}
	}
	if j.State != montagev1.JobState_JOB_STATE_SUCCEEDED {
		return Response{Err: fmt.Errorf("%w: finalize of job %s in state %s", ErrBadCommand, j.ID, j.State)}
	}
	j = s.job(j.ID)
	j.Outputs = map[string]string{}
	for k, v := range c.Outputs {
		j.Outputs[k] = v
	}
	j.Finalized = true
	j.FinalizedAt = at
	j.UpdatedAt = at
	s.refreshJob(j)
	return Response{JobID: j.ID}
}

// housekeep records a storage step on a finished job.
func (s *State) housekeep(at time.Time, jobID string, mark func(*Job)) Response {
	j := s.Jobs[jobID]
	if j == nil {
		return Response{Err: fmt.Errorf("job %s: %w", jobID, ErrNotFound)}
	}
	if !j.Terminal() {
		return Response{Err: fmt.Errorf("%w: housekeeping of unfinished job %s", ErrBadCommand, jobID)}
	}
	j = s.job(j.ID)
	mark(j)
	j.UpdatedAt = at
	s.refreshJob(j)
	return Response{JobID: j.ID}
}

// compact records that a finished job's segments are gone and drops its
// tasks, keeping a summary: nothing reads them any more (get and list show
// the summary), and a week of finished jobs then costs a record each.
func (s *State) compact(j *Job) {
	j.SegmentsPurged = true
	if j.Summary != nil {
		return
	}
	sum := &TaskSummary{Tasks: len(j.TaskIDs)}
	for _, id := range j.TaskIDs {
		if t := s.Tasks[id]; t != nil {
			sum.Attempts += t.Attempts
			if t.Cached {
				sum.Cached++
			}
			sum.TranscriptAudio += t.TranscriptAudio()
		}
		delete(s.Tasks, id)
		delete(s.ix.dependents, id)
		s.ix.uncountTask(id)
	}
	// The resolved source URLs served the tasks; the spec keeps the
	// highlights as submitted.
	j.TaskIDs, j.Failures, j.Summary = nil, nil, sum
	j.Sources, j.IntroURL, j.OutroURL = nil, "", ""
}

// removeJob forgets a job whose objects retention has deleted. Its
// idempotency keys go too: the same key may then create a new job.
func (s *State) removeJob(jobID string) Response {
	j := s.Jobs[jobID]
	if j == nil {
		return Response{Err: fmt.Errorf("job %s: %w", jobID, ErrNotFound)}
	}
	if !j.Deleting {
		return Response{Err: fmt.Errorf("%w: remove of job %s before its objects were deleted", ErrBadCommand, jobID)}
	}
	s.forgetJob(j)
	for _, id := range j.TaskIDs {
		delete(s.Tasks, id)
	}
	if k := j.IdempotencyKey; k != "" && s.Idempotency[k] == jobID {
		delete(s.Idempotency, k)
	}
	delete(s.Jobs, jobID)
	return Response{JobID: jobID}
}

// enroll records a one-time token, and forgets expired ones.
func (s *State) enroll(at time.Time, c *EnrollCmd) Response {
	if c.Hash == "" || !c.ExpiresAt.After(at) {
		return Response{Err: fmt.Errorf("%w: enrolment without a hash or already expired", ErrBadCommand)}
	}
	s.pruneEnrollments(at)
	s.Enrollments[c.Hash] = &Enrollment{Hash: c.Hash, Name: c.Name, ExpiresAt: c.ExpiresAt, CreatedAt: at}
	return Response{}
}

func (s *State) pruneEnrollments(at time.Time) {
	for h, e := range s.Enrollments {
		if !e.ExpiresAt.After(at) {
			delete(s.Enrollments, h)
		}
	}
}

func (s *State) register(at time.Time, c *RegisterCmd) Response {
	if c.Agent == nil || c.Agent.ID == "" {
		return Response{Err: fmt.Errorf("%w: register without agent id", ErrBadCommand)}
	}
	a := *c.Agent
	if c.Enroll != "" {
		e := s.Enrollments[c.Enroll]
		switch {
		case e == nil:
			return Response{Err: fmt.Errorf("%w: the enrolment token is unknown or already used", ErrEnrollment)}
		case !e.ExpiresAt.After(at):
			delete(s.Enrollments, c.Enroll)
			return Response{Err: fmt.Errorf("%w: the enrolment token expired at %s", ErrEnrollment, e.ExpiresAt.UTC().Format(time.RFC3339))}
		}
		delete(s.Enrollments, c.Enroll)
		a.EnrolledName = e.Name
	}
	s.pruneEnrollments(at)
	a.gen = s.gen
	if old := s.Agents[a.ID]; old != nil {
		a.RegisteredAt = old.RegisteredAt
		if old.State == montagev1.AgentState_AGENT_STATE_DRAINING || old.State == montagev1.AgentState_AGENT_STATE_QUARANTINED {
			// An operator's decision (or a quarantine) survives a restart.
			a.State, a.StateReason = old.State, old.StateReason
		}
		a.FailStreak = old.FailStreak
		if a.EnrolledName == "" && c.Enroll == "" {
			a.EnrolledName = old.EnrolledName
		}
		a.Schedule, a.ScheduleGrace = old.Schedule, old.ScheduleGrace // an operator's decision
		if a.CredentialHash == "" {
			a.CredentialHash = old.CredentialHash // proven by the old credential
		}
	} else {
		a.RegisteredAt = at
	}
	if a.EnrolledName != "" {
		a.Name = a.EnrolledName
	}
	if a.State == montagev1.AgentState_AGENT_STATE_UNSPECIFIED {
		a.State = montagev1.AgentState_AGENT_STATE_READY
	}
	s.Agents[a.ID] = &a
	s.ix.touched = append(s.ix.touched, a.ID)
	return Response{}
}

func (s *State) cacheAdd(at time.Time, e *CacheEntry) Response {
	if e.Key == "" || e.Object == "" {
		return Response{Err: fmt.Errorf("%w: cache entry without key or object", ErrBadCommand)}
	}
	c := *e
	c.gen = s.gen
	c.AddedAt, c.UsedAt = at, at
	if old := s.Cache[c.Key]; old != nil {
		s.ix.cacheN, s.ix.cacheBytes = s.ix.cacheN-1, s.ix.cacheBytes-old.Size
	}
	s.ix.cacheN, s.ix.cacheBytes = s.ix.cacheN+1, s.ix.cacheBytes+c.Size
	s.Cache[c.Key] = &c
	if c.Plan != "" {
		s.CacheLatest[c.Plan] = c.Key
	}
	return Response{}
}

// cacheEvict drops the named entries unless an unfinished job still refers
// to them; the leader deletes only the objects of entries this removed.
func (s *State) cacheEvict(c *CacheEvictCmd) Response {
	refs := s.CacheRefs()
	var out []string
	for _, k := range c.Keys {
		e := s.Cache[k]
		if e == nil || refs[k] > 0 {
			continue
		}
		if s.CacheLatest[e.Plan] == k {
			delete(s.CacheLatest, e.Plan)
		}
		delete(s.Cache, k)
		s.ix.cacheN, s.ix.cacheBytes = s.ix.cacheN-1, s.ix.cacheBytes-e.Size
		out = append(out, k)
	}
	return Response{Evicted: out}
}

func stateName(st montagev1.TaskState) string { return st.String() }

func jobStateName(st montagev1.JobState) string { return st.String() }
