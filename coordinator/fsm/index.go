package fsm

import (
	"cmp"
	"iter"
	"slices"
	"strings"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// index holds what the hot paths read, so that none of them scans all jobs
// or all tasks: a farm keeps a week of finished jobs beside the few that
// are live. Every change of a job or task goes through refresh (one task)
// or refreshJob (all of a job's), which keep these in step at a cost that
// does not grow with the farm, nor with the job for a one-task change;
// they are derived, so restore rebuilds them.
type index struct {
	order    jobList             // every job, by submission (Seq)
	live     []jobKey            // unfinished jobs, in scheduling order
	runnable []taskKey           // queued tasks whose dependencies succeeded, in scheduling order
	leased   map[string]string   // leased task → its agent
	verify   map[string]struct{} // tasks whose results wait for a read-back
	tidy     map[string]struct{} // finished jobs with housekeeping left
	finished []finKey            // finished jobs by when they finished
	// dependents names, per task, the tasks that wait for it (the
	// concat waits for every render), while its job keeps its tasks.
	dependents map[string][]string
	// byStreamer holds the library's highlight IDs per streamer.
	byStreamer map[string]map[string]struct{}
	// hooks holds the finished jobs whose webhook is not settled yet.
	hooks map[string]struct{}
	// Counts by state for metrics, kept here so a scrape reads a few
	// numbers instead of scanning: each record's counted state beside the
	// totals.
	jobAs  map[string]montagev1.JobState
	jobN   map[montagev1.JobState]int
	taskAs map[string]TaskClass
	taskN  map[TaskClass]int
	// ended lists the final states of jobs that finished in this Apply.
	ended []montagev1.JobState
	// cacheN and cacheBytes total the cache entries.
	cacheN     int
	cacheBytes int64

	// Since the last Drain: what became runnable (by requirements) and the
	// agents whose leases ended.
	woke    [][]string
	touched []string
	any     bool // a change a lease poll cannot name (agent state, restore)
}

func newIndex() index {
	return index{leased: map[string]string{}, verify: map[string]struct{}{}, tidy: map[string]struct{}{},
		dependents: map[string][]string{}, byStreamer: map[string]map[string]struct{}{}, hooks: map[string]struct{}{},
		jobAs: map[string]montagev1.JobState{}, jobN: map[montagev1.JobState]int{},
		taskAs: map[string]TaskClass{}, taskN: map[TaskClass]int{}}
}

// TaskClass is a task's type and state, what tasks are counted by.
type TaskClass struct {
	Type  montagev1.TaskType
	State montagev1.TaskState
}

// Counts is how many jobs and tasks are in each state.
type Counts struct {
	Jobs  map[montagev1.JobState]int
	Tasks map[TaskClass]int
}

// Counts returns the jobs and tasks by state (a copy, without zeros); its
// cost does not grow with the number of jobs.
func (s *State) Counts() Counts {
	c := Counts{Jobs: make(map[montagev1.JobState]int, len(s.ix.jobN)), Tasks: make(map[TaskClass]int, len(s.ix.taskN))}
	for k, n := range s.ix.jobN {
		if n != 0 {
			c.Jobs[k] = n
		}
	}
	for k, n := range s.ix.taskN {
		if n != 0 {
			c.Tasks[k] = n
		}
	}
	return c
}

// RunnableCount is how many tasks wait runnable.
func (s *State) RunnableCount() int { return len(s.ix.runnable) }

// CacheSize is how many entries the cache holds and their bytes.
func (s *State) CacheSize() (entries int, bytes int64) { return s.ix.cacheN, s.ix.cacheBytes }

func (x *index) countJob(j *Job) {
	if prev, ok := x.jobAs[j.ID]; ok {
		if prev == j.State {
			return
		}
		x.jobN[prev]--
		if !terminal(prev) && terminal(j.State) {
			x.ended = append(x.ended, j.State)
		}
	}
	x.jobAs[j.ID] = j.State
	x.jobN[j.State]++
}

func terminal(st montagev1.JobState) bool {
	return st == montagev1.JobState_JOB_STATE_SUCCEEDED || st == montagev1.JobState_JOB_STATE_FAILED || st == montagev1.JobState_JOB_STATE_CANCELED
}

func (x *index) uncountJob(id string) {
	if prev, ok := x.jobAs[id]; ok {
		x.jobN[prev]--
		delete(x.jobAs, id)
	}
}

func (x *index) countTask(t *Task) {
	c := TaskClass{Type: t.Type, State: t.State}
	if prev, ok := x.taskAs[t.ID]; ok {
		if prev == c {
			return
		}
		x.taskN[prev]--
	}
	x.taskAs[t.ID] = c
	x.taskN[c]++
}

func (x *index) uncountTask(id string) {
	if prev, ok := x.taskAs[id]; ok {
		x.taskN[prev]--
		delete(x.taskAs, id)
	}
}

type jobKey struct {
	prio int32
	seq  uint64
	id   string
}

// Higher priority first, then older.
func cmpJob(a, b jobKey) int {
	return cmp.Or(cmp.Compare(b.prio, a.prio), cmp.Compare(a.seq, b.seq), strings.Compare(a.id, b.id))
}

type taskKey struct {
	job jobKey
	exp float64
	pos int
	id  string
}

// Jobs in scheduling order; within one, the longest expected work first,
// then plan order.
func cmpTask(a, b taskKey) int {
	return cmp.Or(cmpJob(a.job, b.job), cmp.Compare(b.exp, a.exp), cmp.Compare(a.pos, b.pos), strings.Compare(a.id, b.id))
}

type finKey struct {
	at  int64
	seq uint64
	id  string
}

func cmpFin(a, b finKey) int {
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.seq, b.seq), strings.Compare(a.id, b.id))
}

func keyOfJob(j *Job) jobKey { return jobKey{prio: j.Priority, seq: j.Seq, id: j.ID} }

func keyOfFinished(j *Job) finKey {
	return finKey{at: unixNano(j.FinishedAt), seq: j.Seq, id: j.ID}
}

// put adds or removes k in the sorted slice xs.
func put[K any](xs []K, k K, in bool, cmp func(a, b K) int) ([]K, bool) {
	i, found := slices.BinarySearchFunc(xs, k, cmp)
	switch {
	case in && !found:
		return slices.Insert(xs, i, k), true
	case !in && found:
		return slices.Delete(xs, i, i+1), true
	}
	return xs, false
}

// tidyLeft reports whether a finished job still has housekeeping to do.
func tidyLeft(j *Job) bool {
	return j.Terminal() && (j.Summary == nil || j.Deleting)
}

// refreshJob brings the indexes in step with j and all its tasks: at
// submit, when the job ends, at restore.
func (s *State) refreshJob(j *Job) {
	if j == nil {
		return
	}
	s.refreshJobOnly(j)
	for _, id := range j.TaskIDs {
		if t := s.Tasks[id]; t != nil {
			s.refreshTask(j, t)
		}
	}
}

// refresh brings the indexes in step after one task of j changed: the
// job, the task, and the tasks waiting for it once it succeeded. A job
// that just ended refreshes all its tasks (once).
func (s *State) refresh(j *Job, t *Task) {
	if j == nil {
		return
	}
	if _, live := slices.BinarySearchFunc(s.ix.live, keyOfJob(j), cmpJob); live && j.Terminal() {
		s.refreshJob(j)
		return
	}
	s.refreshJobOnly(j)
	s.refreshTask(j, t)
	if t.State == montagev1.TaskState_TASK_STATE_SUCCEEDED || t.Optional && t.State == montagev1.TaskState_TASK_STATE_FAILED {
		for _, id := range s.ix.dependents[t.ID] {
			if d := s.Tasks[id]; d != nil {
				s.refreshTask(j, d)
			}
		}
	}
}

// indexPlan records which tasks wait for which (at submit, restore).
func (s *State) indexPlan(t *Task) {
	for _, dep := range t.DependsOn {
		s.ix.dependents[dep] = append(s.ix.dependents[dep], t.ID)
	}
}

// refreshJobOnly updates the job-level indexes.
func (s *State) refreshJobOnly(j *Job) {
	s.ix.countJob(j)
	s.ix.live, _ = put(s.ix.live, keyOfJob(j), !j.Terminal(), cmpJob)
	if j.Terminal() && !j.FinishedAt.IsZero() {
		s.ix.finished, _ = put(s.ix.finished, keyOfFinished(j), true, cmpFin)
	}
	if tidyLeft(j) {
		s.ix.tidy[j.ID] = struct{}{}
	} else {
		delete(s.ix.tidy, j.ID)
	}
	if w := j.Webhook; w != nil && j.Terminal() && j.State != montagev1.JobState_JOB_STATE_CANCELED && !w.Delivered && !w.GaveUp {
		s.ix.hooks[j.ID] = struct{}{}
	} else {
		delete(s.ix.hooks, j.ID)
	}
}

// PendingWebhooks yields the finished jobs whose end is still to be
// announced (unordered), so the leader's delivery loop walks only those.
func (s *State) PendingWebhooks(f func(*Job)) {
	for id := range s.ix.hooks {
		f(s.Jobs[id])
	}
}

func (s *State) refreshTask(j *Job, t *Task) {
	s.ix.countTask(t)
	run := !j.Terminal() && t.State == montagev1.TaskState_TASK_STATE_QUEUED && s.DepsDone(t)
	var added bool
	s.ix.runnable, added = put(s.ix.runnable, taskKey{job: keyOfJob(j), exp: t.ExpectedSeconds, pos: t.pos, id: t.ID}, run, cmpTask)
	if added && run {
		s.ix.woke = append(s.ix.woke, t.Requires)
	}
	if t.State == montagev1.TaskState_TASK_STATE_VERIFYING {
		s.ix.verify[t.ID] = struct{}{}
	} else {
		delete(s.ix.verify, t.ID)
	}
	if t.State == montagev1.TaskState_TASK_STATE_LEASED {
		s.ix.leased[t.ID] = t.AgentID
	} else if a, ok := s.ix.leased[t.ID]; ok {
		delete(s.ix.leased, t.ID)
		s.ix.touched = append(s.ix.touched, a)
	}
}

// forgetJob drops a removed job and its tasks from the indexes.
func (s *State) forgetJob(j *Job) {
	for _, id := range j.TaskIDs {
		if t := s.Tasks[id]; t != nil {
			s.ix.runnable, _ = put(s.ix.runnable, taskKey{job: keyOfJob(j), exp: t.ExpectedSeconds, pos: t.pos, id: t.ID}, false, cmpTask)
			delete(s.ix.leased, t.ID)
			delete(s.ix.verify, t.ID)
		}
		delete(s.ix.dependents, id)
		s.ix.uncountTask(id)
	}
	s.ix.uncountJob(j.ID)
	s.ix.live, _ = put(s.ix.live, keyOfJob(j), false, cmpJob)
	s.ix.finished, _ = put(s.ix.finished, keyOfFinished(j), false, cmpFin)
	delete(s.ix.tidy, j.ID)
	delete(s.ix.hooks, j.ID)
	s.ix.order.Remove(j, s.gen)
}

// Reindex rebuilds every index from the records: after a restore, or
// after a test or tool edited records directly.
func (s *State) Reindex() {
	s.ix = newIndex()
	s.Idempotency = map[string]string{}
	all := make([]*Job, 0, len(s.Jobs))
	for id, j := range s.Jobs {
		all = append(all, j)
		if j.IdempotencyKey != "" {
			s.Idempotency[j.IdempotencyKey] = id
		}
		for i, tid := range j.TaskIDs {
			if t := s.Tasks[tid]; t != nil {
				t.pos = i
				s.indexPlan(t)
			}
		}
	}
	slices.SortFunc(all, func(a, b *Job) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), strings.Compare(a.ID, b.ID))
	})
	for _, e := range s.Cache {
		s.ix.cacheN, s.ix.cacheBytes = s.ix.cacheN+1, s.ix.cacheBytes+e.Size
	}
	for _, h := range s.Highlights {
		s.indexHighlight(h)
	}
	for _, j := range all {
		s.ix.order.Append(j, s.gen)
		s.refreshJob(j)
	}
	s.ix.woke, s.ix.touched, s.ix.any = nil, nil, true
}

// Changes is what one or more applied commands changed for lease polls.
type Changes struct {
	// Runnable lists, per task that became runnable, what it requires.
	Runnable [][]string
	// Agents lists agents whose leases ended.
	Agents []string
	// Any: something changed that may let any agent take work (an agent
	// was readied, the state was restored).
	Any bool
}

// Drain returns and forgets the changes since the last Drain.
func (s *State) Drain() Changes {
	c := Changes{Runnable: s.ix.woke, Agents: s.ix.touched, Any: s.ix.any}
	s.ix.woke, s.ix.touched, s.ix.any = nil, nil, false
	return c
}

// JobsNewestFirst yields every job, the newest first.
func (s *State) JobsNewestFirst() iter.Seq[*Job] {
	return func(yield func(*Job) bool) {
		for j := range s.ix.order.Backward() {
			if !yield(j) {
				return
			}
		}
	}
}

// LiveJobs yields the unfinished jobs in scheduling order: priority (high
// first), then age (old first).
func (s *State) LiveJobs() iter.Seq[*Job] {
	return func(yield func(*Job) bool) {
		for _, k := range s.ix.live {
			if !yield(s.Jobs[k.id]) {
				return
			}
		}
	}
}

// Runnable yields the queued tasks whose dependencies succeeded, in
// scheduling order: jobs as LiveJobs, and within a job the longest
// expected work first, so that the last task to finish is a short one.
func (s *State) Runnable() iter.Seq[*Task] {
	return func(yield func(*Task) bool) {
		for _, k := range s.ix.runnable {
			if !yield(s.Tasks[k.id]) {
				return
			}
		}
	}
}

// LeasedTasks lists every task that holds a lease, by id.
func (s *State) LeasedTasks() []*Task {
	out := make([]*Task, 0, len(s.ix.leased))
	for id := range s.ix.leased {
		out = append(out, s.Tasks[id])
	}
	slices.SortFunc(out, func(a, b *Task) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Verifying lists the tasks whose results wait for a read-back, by id.
func (s *State) Verifying() []*Task {
	out := make([]*Task, 0, len(s.ix.verify))
	for id := range s.ix.verify {
		out = append(out, s.Tasks[id])
	}
	slices.SortFunc(out, func(a, b *Task) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Untidy lists the finished jobs that still have housekeeping left
// (finalize, purge and compact, delete), oldest first.
func (s *State) Untidy() []*Job {
	out := make([]*Job, 0, len(s.ix.tidy))
	for id := range s.ix.tidy {
		out = append(out, s.Jobs[id])
	}
	slices.SortFunc(out, func(a, b *Job) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// FinishedBefore yields the finished jobs that finished before t, the
// earliest first.
func (s *State) FinishedBefore(t time.Time) iter.Seq[*Job] {
	cut := unixNano(t)
	return func(yield func(*Job) bool) {
		for _, k := range s.ix.finished {
			if k.at >= cut || !yield(s.Jobs[k.id]) {
				return
			}
		}
	}
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is unixNano's inverse.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
