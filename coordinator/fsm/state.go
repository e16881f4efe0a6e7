// Package fsm is the coordinator's replicated state machine: jobs, tasks,
// agents and leases. Apply is deterministic: every time and id it needs comes
// inside the command, stamped by the leader, so every replica that applies
// the same log holds the same state.
package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Errors Apply returns; the API maps them to Connect codes.
var (
	ErrNotFound     = errors.New("not found")
	ErrStaleLease   = errors.New("stale lease token")
	ErrWrongAgent   = errors.New("lease belongs to another agent")
	ErrNotRunnable  = errors.New("task is not runnable")
	ErrJobFinished  = errors.New("job has already finished")
	ErrBadCommand   = errors.New("malformed command")
	ErrAgentUnknown = errors.New("agent is not registered")
	ErrAgentBusy    = errors.New("agent still holds leases")
	ErrEnrollment   = errors.New("enrolment refused")
)

// Result is what a task produced, as reported by the agent and verified by
// the coordinator before the completion was proposed.
type Result struct {
	Key      string  `json:"key"`
	Size     int64   `json:"size"`
	SHA256   string  `json:"sha256"`
	Duration float64 `json:"duration"`
	// Source is what the render learnt about its source (montagev1.SourceFacts).
	Source []byte `json:"source,omitempty"`
	// Outputs are a concat's further outputs: name → object key, with
	// what was accepted for each.
	Outputs    map[string]string   `json:"outputs,omitempty"`
	OutputSums map[string]Checksum `json:"output_sums,omitempty"`
	// Warning is the agent's note on a good result, added to the job's
	// warnings when the result is committed.
	Warning string `json:"warning,omitempty"`
}

// Checksum is an accepted object's size and SHA-256 (hex).
type Checksum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// RenderInput is what a render task cuts.
type RenderInput struct {
	// URL is empty in a planned task: the source is named once, in the
	// job's Sources (see State.SourceOf), not once per chunk.
	URL          string  `json:"url,omitempty"`
	SourceType   string  `json:"source_type,omitempty"`
	Start        float64 `json:"start"`
	Duration     float64 `json:"duration"`
	Title        string  `json:"title"`
	FadeIn       bool    `json:"fade_in,omitempty"`
	FadeOut      bool    `json:"fade_out,omitempty"`
	OverlayTitle string  `json:"overlay_title,omitempty"`
	TitleSeconds float64 `json:"title_seconds,omitempty"`
	// A chunk's inner edges move to the next source keyframe (the agent
	// finds it); HighlightStart anchors the frame grid they snap to.
	SnapStart      bool    `json:"snap_start,omitempty"`
	SnapEnd        bool    `json:"snap_end,omitempty"`
	HighlightStart float64 `json:"highlight_start,omitempty"`
	// Burn names the transcribe task whose cues this render draws into
	// the picture (subtitles: burn); HighlightStart is then always set, as
	// the origin of the transcript's times.
	Burn string `json:"burn,omitempty"`
}

// CacheEntry is one segment in the cache: the render whose content key is
// Plan, of the source as it was when Identity was seen, lives at Object.
// Key is Plan and a hash of Identity: a source re-uploaded at the same URL
// gets an entry of its own.
type CacheEntry struct {
	Key      string    `json:"key"`
	Plan     string    `json:"plan,omitempty"`
	Identity string    `json:"identity,omitempty"`
	Object   string    `json:"object"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Duration float64   `json:"duration"`
	Source   []byte    `json:"source,omitempty"`
	AddedAt  time.Time `json:"added_at"`
	UsedAt   time.Time `json:"used_at"`

	gen uint64
}

// Task is one unit of work leased to one agent at a time.
type Task struct {
	ID              string              `json:"id"`
	JobID           string              `json:"job_id"`
	Type            montagev1.TaskType  `json:"type"`
	HighlightIndex  int                 `json:"highlight_index"`
	DependsOn       []string            `json:"depends_on,omitempty"`
	State           montagev1.TaskState `json:"state"`
	Attempts        int                 `json:"attempts"`
	MaxAttempts     int                 `json:"max_attempts"`
	LeaseToken      uint64              `json:"lease_token,omitempty"`
	AgentID         string              `json:"agent_id,omitempty"`
	LeasedAt        time.Time           `json:"leased_at"`
	Error           string              `json:"error,omitempty"`
	Result          *Result             `json:"result,omitempty"`
	Commits         int                 `json:"commits"`
	ExpectedSeconds float64             `json:"expected_seconds"`
	Render          *RenderInput        `json:"render,omitempty"`
	UpdatedAt       time.Time           `json:"updated_at"`
	// Role is "intro", "highlight" or "outro" for renders.
	Role string `json:"role,omitempty"`
	// Chunk of Chunks of its highlight (0 of 1 when not split).
	Chunk  int `json:"chunk,omitempty"`
	Chunks int `json:"chunks,omitempty"`
	// CacheKey is the render's content key (its plan: source URL, cut,
	// profile). CacheEntry names the cache entry the task may reuse, set at
	// submit from the newest entry of that plan: its agent first checks
	// that the source is still what the entry was made from. Cached says
	// the result came from the cache.
	CacheKey   string `json:"cache_key,omitempty"`
	CacheEntry string `json:"cache_entry,omitempty"`
	Cached     bool   `json:"cached,omitempty"`
	// Requires lists what an agent must provide to take the task.
	Requires []string `json:"requires,omitempty"`
	// ExpectedBytes is about how much disk the task needs on an agent.
	ExpectedBytes int64 `json:"expected_bytes,omitempty"`
	// FailCounts counts reported failures per agent. SourceSuspect: two
	// agents failed it, so the task (its source) is to blame, not them.
	FailCounts    map[string]int `json:"fail_counts,omitempty"`
	SourceSuspect bool           `json:"source_suspect,omitempty"`
	// Optional: its failure leaves a warning, not a failed job (a
	// transcript whose montage is worth having without it).
	Optional bool `json:"optional,omitempty"`

	gen uint64 // see State.writable
	pos int    // its place in its job's plan
}

// Job is one submitted montage.
type Job struct {
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	Spec      []byte             `json:"spec"`    // deterministic proto encoding of montagev1.JobSpec
	Profile   []byte             `json:"profile"` // resolved montagev1.RenderProfile
	Priority  int32              `json:"priority"`
	State     montagev1.JobState `json:"state"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
	TaskIDs   []string           `json:"task_ids"`
	Outputs   map[string]string  `json:"outputs,omitempty"`
	// OutputSums is what was accepted for each output, by name: downloads
	// are checked against it.
	OutputSums map[string]Checksum `json:"output_sums,omitempty"`
	Error      string              `json:"error,omitempty"`
	Warnings   []string            `json:"warnings,omitempty"`
	Seq        uint64              `json:"seq"` // raft index of the submission: orders jobs of equal age
	// FinishedAt is when the job reached a terminal state (retention counts from it).
	FinishedAt time.Time `json:"finished_at"`
	// Finalized: outputs were copied to their stable keys, at FinalizedAt.
	Finalized   bool      `json:"finalized,omitempty"`
	FinalizedAt time.Time `json:"finalized_at"`
	// SegmentsPurged: intermediate objects were deleted.
	SegmentsPurged bool `json:"segments_purged,omitempty"`
	// Deleting: retention is removing the job's objects; RemoveJob follows.
	Deleting bool `json:"deleting,omitempty"`
	// Sources are the resolved source URLs, named once per job: the
	// highlights' by index, then the intro's and the outro's ("" if none).
	Sources  []string `json:"sources,omitempty"`
	IntroURL string   `json:"intro_url,omitempty"`
	OutroURL string   `json:"outro_url,omitempty"`
	// Failures counts failed attempts per agent; Blocked lists (sorted) the
	// agents that failed BlockAfter of them and get no more of this job.
	Failures map[string]int `json:"failures,omitempty"`
	Blocked  []string       `json:"blocked,omitempty"`
	// IdempotencyKey is the key it was submitted with ("" if none).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Summary is set once the job is compacted: its tasks are gone and
	// this is what remains of them.
	Summary *TaskSummary `json:"summary,omitempty"`
	// Origin: the schedule fire that made the job; Webhook: where its end
	// is announced, and the delivery so far.
	Origin  *Origin  `json:"origin,omitempty"`
	Webhook *Webhook `json:"webhook,omitempty"`

	gen uint64
}

// TranscriptAudio is the seconds of audio a finished transcribe task sent
// to its service (0 for any other task).
func (t *Task) TranscriptAudio() float64 {
	if t.Type != montagev1.TaskType_TASK_TYPE_TRANSCRIBE || t.State != montagev1.TaskState_TASK_STATE_SUCCEEDED || t.Result == nil {
		return 0
	}
	return t.Result.Duration
}

// TaskSummary is what a compacted job keeps of its tasks.
type TaskSummary struct {
	Tasks    int `json:"tasks"`
	Cached   int `json:"cached"`
	Attempts int `json:"attempts"`
	// TranscriptAudio is the seconds of audio the job's transcripts sent.
	TranscriptAudio float64 `json:"transcript_audio,omitempty"`
}

// BlocksAgent reports whether the job's blocklist holds agentID.
func (j *Job) BlocksAgent(agentID string) bool {
	_, found := sort.Find(len(j.Blocked), func(i int) int { return strings.Compare(agentID, j.Blocked[i]) })
	return found
}

// Terminal reports whether the job can change no more.
func (j *Job) Terminal() bool {
	switch j.State {
	case montagev1.JobState_JOB_STATE_SUCCEEDED, montagev1.JobState_JOB_STATE_FAILED, montagev1.JobState_JOB_STATE_CANCELED:
		return true
	}
	return false
}

// Agent is a registered render agent.
type Agent struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Capabilities []byte            `json:"capabilities"` // montagev1.AgentCapabilities
	Slots        int               `json:"slots"`
	Labels       map[string]string `json:"labels,omitempty"`
	// Provides is what the agent can do, as tasks' Requires name it.
	Provides []string `json:"provides,omitempty"`
	// GPUSessions is how many hardware encodes it runs at once.
	GPUSessions  int                  `json:"gpu_sessions,omitempty"`
	State        montagev1.AgentState `json:"state"`
	RegisteredAt time.Time            `json:"registered_at"`
	// CredentialHash is the SHA-256 (hex) of the agent's own credential,
	// made at its first Register: the proof an agent is who it says.
	CredentialHash string `json:"credential_hash,omitempty"`
	// FailStreak counts its failed attempts in a row (across jobs, not
	// counting tasks that failed on other agents too); at the farm's limit
	// it is quarantined, with the reason in StateReason.
	FailStreak  int    `json:"fail_streak,omitempty"`
	StateReason string `json:"state_reason,omitempty"`
	// MetricsAddr is where it serves Prometheus metrics (host:port).
	MetricsAddr string `json:"metrics_addr,omitempty"`
	// Version is its release; Protocol the agent protocol it speaks.
	Version  string `json:"version,omitempty"`
	Protocol int    `json:"protocol,omitempty"`
	// EnrolledName is the name its enrolment gave it: an operator's
	// choice, kept over the name the PC registers with.
	EnrolledName string `json:"enrolled_name,omitempty"`
	// Schedule is when it may take work (schedule.Parse's text; empty:
	// always), read in TimeZone (the PC's, IANA; empty: UTC);
	// ScheduleGrace how long running work may go on past a window (0:
	// finish it).
	Schedule      string        `json:"schedule,omitempty"`
	TimeZone      string        `json:"time_zone,omitempty"`
	ScheduleGrace time.Duration `json:"schedule_grace,omitempty"`

	gen uint64
}

// Enrollment is a one-time registration token: a PC that presents it
// before ExpiresAt registers once, and the token is spent.
type Enrollment struct {
	Hash      string    `json:"hash"`
	Name      string    `json:"name,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// State is the whole replicated state and, beside it, the indexes the hot
// paths read (rebuilt from the records on restore, never written to a
// snapshot).
type State struct {
	Jobs   map[string]*Job
	Tasks  map[string]*Task
	Agents map[string]*Agent
	// Idempotency maps a submission's key to its job (derived from the
	// jobs' IdempotencyKey).
	Idempotency map[string]string
	// Cache holds cached segments by entry key; CacheLatest names, per
	// content key, the entry of the newest render.
	Cache       map[string]*CacheEntry
	CacheLatest map[string]string
	// Enrollments are the one-time tokens new PCs may register with, by
	// the SHA-256 of the token (the token itself is never kept).
	Enrollments map[string]*Enrollment
	// Coordinators maps a coordinator's id to its API base URL.
	Coordinators map[string]string
	// The highlight library by ID, the feeds and montage schedules by
	// name, and the montage catalog by job ID.
	Highlights       map[string]*Highlight
	Feeds            map[string]*Feed
	MontageSchedules map[string]*MontageSchedule
	Catalog          map[string]*Montage
	// AppliedIndex is the raft index of the last applied command.
	AppliedIndex uint64

	// gen counts the snapshots taken: a record whose gen is older is
	// shared with a snapshot being written and is copied before a change.
	gen uint64
	ix  index
}

// New returns an empty state.
func New() *State {
	s := &State{
		Jobs:         map[string]*Job{},
		Tasks:        map[string]*Task{},
		Agents:       map[string]*Agent{},
		Idempotency:  map[string]string{},
		Cache:        map[string]*CacheEntry{},
		CacheLatest:  map[string]string{},
		Enrollments:  map[string]*Enrollment{},
		Coordinators: map[string]string{},
		Highlights:   map[string]*Highlight{}, Feeds: map[string]*Feed{},
		MontageSchedules: map[string]*MontageSchedule{}, Catalog: map[string]*Montage{},
	}
	s.ix = newIndex()
	return s
}

// Unfinished counts the jobs that are queued or running.
func (s *State) Unfinished() int { return len(s.ix.live) }

// SourceOf is the URL a render task cuts.
func (s *State) SourceOf(t *Task) string {
	if t.Render != nil && t.Render.URL != "" {
		return t.Render.URL // planned before sources were named once per job
	}
	j := s.Jobs[t.JobID]
	if j == nil {
		return ""
	}
	switch {
	case t.Role == "intro":
		return j.IntroURL
	case t.Role == "outro":
		return j.OutroURL
	case t.HighlightIndex >= 0 && t.HighlightIndex < len(j.Sources):
		return j.Sources[t.HighlightIndex]
	}
	return ""
}

// TasksOf returns a job's tasks in plan order.
func (s *State) TasksOf(j *Job) []*Task {
	out := make([]*Task, 0, len(j.TaskIDs))
	for _, id := range j.TaskIDs {
		if t := s.Tasks[id]; t != nil {
			out = append(out, t)
		}
	}
	return out
}

// DepsDone reports whether all of a task's dependencies succeeded.
func (s *State) DepsDone(t *Task) bool {
	for _, d := range t.DependsOn {
		dt := s.Tasks[d]
		if dt == nil || dt.State != montagev1.TaskState_TASK_STATE_SUCCEEDED && !(dt.Optional && dt.State == montagev1.TaskState_TASK_STATE_FAILED) {
			return false
		}
	}
	return true
}

// CacheEntryKey is the entry key of a render of plan from a source seen as
// identity.
func CacheEntryKey(plan, identity string) string {
	h := sha256.Sum256([]byte(identity))
	return plan + "-" + hex.EncodeToString(h[:8])
}

// CacheRefs counts, per entry key, the unfinished jobs that still need the
// cached segment: such an entry must not be evicted.
func (s *State) CacheRefs() map[string]int {
	refs := map[string]int{}
	for j := range s.LiveJobs() {
		seen := map[string]bool{}
		for _, id := range j.TaskIDs {
			if t := s.Tasks[id]; t != nil && t.CacheEntry != "" && !seen[t.CacheEntry] {
				seen[t.CacheEntry] = true
				refs[t.CacheEntry]++
			}
		}
	}
	return refs
}

// CacheBytes is the total size of cached segments.
func (s *State) CacheBytes() int64 {
	var n int64
	for _, e := range s.Cache {
		n += e.Size
	}
	return n
}
