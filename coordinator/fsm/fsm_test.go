package fsm

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// log is a scripted raft log: commands with their indexes.
type log struct {
	s   *State
	idx uint64
}

func newLog() *log { return &log{s: New()} }

func (l *log) apply(c *Command) Response {
	l.idx++
	c.At = t0.Add(time.Duration(l.idx) * time.Second)
	return l.s.Apply(l.idx, c)
}

func job(id string, renders int, maxAttempts int) *SubmitCmd {
	c := &SubmitCmd{Job: &Job{ID: id, Name: id}}
	var deps []string
	for i := 0; i < renders; i++ {
		tid := id + "-r" + string(rune('0'+i))
		c.Tasks = append(c.Tasks, &Task{ID: tid, Type: montagev1.TaskType_TASK_TYPE_RENDER, HighlightIndex: i, MaxAttempts: maxAttempts, ExpectedSeconds: float64(10 * (i + 1))})
		deps = append(deps, tid)
	}
	c.Tasks = append(c.Tasks, &Task{ID: id + "-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, HighlightIndex: -1, DependsOn: deps, MaxAttempts: maxAttempts})
	return c
}

func register(l *log, ids ...string) {
	for _, id := range ids {
		l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: id, Slots: 1}}})
	}
}

func TestJobLifecycle(t *testing.T) {
	l := newLog()
	register(l, "a1")
	if r := l.apply(&Command{Submit: job("j1", 2, 3)}); r.Err != nil || r.JobID != "j1" {
		t.Fatalf("submit: %+v", r)
	}
	// The concat cannot be granted before its renders succeed.
	if r := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-concat", AgentID: "a1"}}); !errors.Is(r.Err, ErrNotRunnable) {
		t.Fatalf("early concat grant: %v", r.Err)
	}
	for _, id := range []string{"j1-r0", "j1-r1"} {
		g := l.apply(&Command{Grant: &GrantCmd{TaskID: id, AgentID: "a1"}})
		if g.Err != nil || g.Token != l.idx {
			t.Fatalf("grant %s: %+v (token must be the raft index %d)", id, g, l.idx)
		}
		if l.s.Jobs["j1"].State != montagev1.JobState_JOB_STATE_RUNNING {
			t.Fatalf("job state %s after a grant", l.s.Jobs["j1"].State)
		}
		if r := l.apply(&Command{Complete: &CompleteCmd{TaskID: id, AgentID: "a1", Token: g.Token, Result: Result{Key: id}}}); r.Err != nil {
			t.Fatalf("complete %s: %v", id, r.Err)
		}
	}
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-concat", AgentID: "a1"}})
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	l.apply(&Command{Complete: &CompleteCmd{TaskID: "j1-concat", AgentID: "a1", Token: g.Token, Result: Result{Key: "m.mp4"}}})
	j := l.s.Jobs["j1"]
	if j.State != montagev1.JobState_JOB_STATE_SUCCEEDED || j.Outputs["montage"] != "m.mp4" {
		t.Fatalf("job = %s outputs %v", j.State, j.Outputs)
	}
	for _, task := range l.s.TasksOf(j) {
		if task.Commits != 1 {
			t.Errorf("task %s committed %d times", task.ID, task.Commits)
		}
	}
}

func TestLeaseFencing(t *testing.T) {
	l := newLog()
	register(l, "a1", "a2")
	l.apply(&Command{Submit: job("j", 1, 3)})
	g1 := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a1"}})
	if r := l.apply(&Command{Expire: &ExpireCmd{TaskID: "j-r0", Token: g1.Token}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if st := l.s.Tasks["j-r0"].State; st != montagev1.TaskState_TASK_STATE_QUEUED {
		t.Fatalf("expired task is %s, want queued", st)
	}
	g2 := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a2"}})
	cases := []struct {
		name string
		cmd  *Command
		want error
	}{
		{"zombie completes", &Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a1", Token: g1.Token}}, ErrStaleLease},
		{"zombie fails", &Command{Fail: &FailCmd{TaskID: "j-r0", AgentID: "a1", Token: g1.Token, Error: "x"}}, ErrStaleLease},
		{"stale expiry", &Command{Expire: &ExpireCmd{TaskID: "j-r0", Token: g1.Token}}, ErrStaleLease},
		{"other agent with current token", &Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a1", Token: g2.Token}}, ErrWrongAgent},
		{"unknown task", &Command{Complete: &CompleteCmd{TaskID: "nope", AgentID: "a1", Token: g2.Token}}, ErrNotFound},
	}
	for _, c := range cases {
		if r := l.apply(c.cmd); !errors.Is(r.Err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, r.Err, c.want)
		}
	}
	if r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a2", Token: g2.Token, Result: Result{Key: "k2"}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a2", Token: g2.Token, Result: Result{Key: "k3"}}}); !errors.Is(r.Err, ErrStaleLease) {
		t.Errorf("second completion: %v", r.Err)
	}
	task := l.s.Tasks["j-r0"]
	if task.Commits != 1 || task.Result.Key != "k2" || task.Attempts != 2 {
		t.Errorf("task commits=%d key=%s attempts=%d; want 1, k2, 2", task.Commits, task.Result.Key, task.Attempts)
	}
}

func TestAttemptLimitFailsJob(t *testing.T) {
	l := newLog()
	register(l, "a1")
	l.apply(&Command{Submit: job("j", 2, 2)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r1", AgentID: "a1"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "j-r1", AgentID: "a1", Token: g.Token, Error: "first"}})
	// A handback (agent shutdown) does not use up an attempt.
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r1", AgentID: "a1"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "j-r1", AgentID: "a1", Token: g.Token, Handback: true}})
	if a := l.s.Tasks["j-r1"].Attempts; a != 1 {
		t.Fatalf("attempts after handback = %d, want 1", a)
	}
	g0 := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a1"}})
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r1", AgentID: "a1"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "j-r1", AgentID: "a1", Token: g.Token, Error: "Connection refused"}})
	j := l.s.Jobs["j"]
	if j.State != montagev1.JobState_JOB_STATE_FAILED || !bytes.Contains([]byte(j.Error), []byte("Connection refused")) {
		t.Fatalf("job %s error %q", j.State, j.Error)
	}
	for _, id := range []string{"j-r0", "j-concat"} {
		if st := l.s.Tasks[id].State; st != montagev1.TaskState_TASK_STATE_CANCELED {
			t.Errorf("task %s is %s in a failed job, want canceled", id, st)
		}
	}
	if r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a1", Token: g0.Token}}); !errors.Is(r.Err, ErrStaleLease) {
		t.Errorf("completion in a failed job: %v", r.Err)
	}
}

func TestCancelAndIdempotency(t *testing.T) {
	l := newLog()
	c := job("j", 1, 3)
	c.IdempotencyKey = "k"
	l.apply(&Command{Submit: c})
	again := job("j-other", 1, 3)
	again.IdempotencyKey = "k"
	if r := l.apply(&Command{Submit: again}); !r.Existing || r.JobID != "j" || len(l.s.Jobs) != 1 {
		t.Fatalf("resubmit with the same key: %+v, %d jobs", r, len(l.s.Jobs))
	}
	if r := l.apply(&Command{Cancel: &CancelCmd{JobID: "j"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := l.apply(&Command{Cancel: &CancelCmd{JobID: "j"}}); !errors.Is(r.Err, ErrJobFinished) {
		t.Errorf("second cancel: %v", r.Err)
	}
	if r := l.apply(&Command{Cancel: &CancelCmd{JobID: "missing"}}); !errors.Is(r.Err, ErrNotFound) {
		t.Errorf("cancel of a missing job: %v", r.Err)
	}
	if st := l.s.Tasks["j-r0"].State; st != montagev1.TaskState_TASK_STATE_CANCELED {
		t.Errorf("task of canceled job is %s", st)
	}
}

// scripted drives a state through every kind of command.
func scripted() *log {
	l := newLog()
	register(l, "a1", "a2")
	l.apply(&Command{Submit: job("j1", 3, 3)})
	l.apply(&Command{Submit: job("j2", 1, 1)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r2", AgentID: "a1"}})
	l.apply(&Command{Complete: &CompleteCmd{TaskID: "j1-r2", AgentID: "a1", Token: g.Token, Result: Result{Key: "k", Size: 3, SHA256: "ab", Duration: 1.5}}})
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r1", AgentID: "a2"}})
	l.apply(&Command{Expire: &ExpireCmd{TaskID: "j1-r1", Token: g.Token}})
	l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r1", AgentID: "a1"}})
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j2-r0", AgentID: "a2"}})
	l.apply(&Command{Fail: &FailCmd{TaskID: "j2-r0", AgentID: "a2", Token: g.Token, Error: "boom"}})
	return l
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	l := scripted()
	var snap bytes.Buffer
	if err := l.s.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(bytes.NewReader(snap.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := restored.Snapshot(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap.Bytes(), again.Bytes()) {
		t.Fatalf("snapshot of restored state differs:\n%s\n%s", snap.String(), again.String())
	}
	// The restored state keeps working: the lease granted before the
	// snapshot completes under its token afterwards.
	tok := restored.Tasks["j1-r1"].LeaseToken
	if r := restored.Apply(l.idx+1, &Command{At: t0, Complete: &CompleteCmd{TaskID: "j1-r1", AgentID: "a1", Token: tok}}); r.Err != nil {
		t.Fatalf("complete after restore: %v", r.Err)
	}
	if _, err := Restore(bytes.NewReader([]byte("{not json"))); err == nil {
		t.Error("restore of garbage succeeded")
	}
}

// Two replicas applying the same log hold byte-identical state.
func TestApplyIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := scripted().s.Snapshot(&a); err != nil {
		t.Fatal(err)
	}
	if err := scripted().s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same log, different states")
	}
}

func TestCommandEncoding(t *testing.T) {
	c := &Command{At: t0, Grant: &GrantCmd{TaskID: "t", AgentID: "a"}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil || d.Grant.TaskID != "t" || !d.At.Equal(t0) {
		t.Fatalf("decode = %+v, %v", d, err)
	}
	if _, err := Decode([]byte("x")); !errors.Is(err, ErrBadCommand) {
		t.Errorf("decode garbage: %v", err)
	}
	if r := New().Apply(1, &Command{}); !errors.Is(r.Err, ErrBadCommand) {
		t.Errorf("empty command: %v", r.Err)
	}
}

// A render whose content key the cache holds is done at submit; an entry an
// unfinished job refers to cannot be evicted.
// A cached render is offered for reuse (its agent checks the source
// first) and completes from the entry with ReuseCache; a render of a
// re-uploaded source makes an entry of its own, which then is the newest;
// entries an unfinished job may reuse are never evicted.
func TestCacheReuseAndEviction(t *testing.T) {
	s := New()
	at := time.Unix(100, 0)
	must := func(r Response) Response {
		t.Helper()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	old := CacheEntryKey("k1", "etag=1")
	must(s.Apply(1, &Command{At: at, CacheAdd: &CacheEntry{Key: old, Plan: "k1", Identity: "etag=1", Object: "cache/old.mp4", Size: 10, SHA256: "ab", Duration: 5}}))
	must(s.Apply(2, &Command{At: at, Register: &RegisterCmd{Agent: &Agent{ID: "a", Slots: 2}}}))
	must(s.Apply(3, &Command{At: at, Submit: &SubmitCmd{Job: &Job{ID: "j"}, Tasks: []*Task{
		{ID: "j-r0", Type: montagev1.TaskType_TASK_TYPE_RENDER, CacheKey: "k1", MaxAttempts: 1},
		{ID: "j-r1", Type: montagev1.TaskType_TASK_TYPE_RENDER, CacheKey: "k2", MaxAttempts: 1},
		{ID: "j-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, DependsOn: []string{"j-r0", "j-r1"}, MaxAttempts: 1},
	}}}))
	hit, miss := s.Tasks["j-r0"], s.Tasks["j-r1"]
	if hit.State != montagev1.TaskState_TASK_STATE_QUEUED || hit.CacheEntry != old || hit.Cached {
		t.Errorf("task with a cached render = %+v, want queued for its agent to check the source", hit)
	}
	if miss.CacheEntry != "" {
		t.Errorf("uncached task = %+v", miss)
	}
	if got := s.CacheRefs()[old]; got != 1 {
		t.Errorf("refs = %d, want 1", got)
	}
	if r := s.Apply(4, &Command{At: at, CacheEvict: &CacheEvictCmd{Keys: []string{old, "nope"}}}); len(r.Evicted) != 0 || s.Cache[old] == nil {
		t.Errorf("evicted %v while job j may reuse it", r.Evicted)
	}
	g := must(s.Apply(5, &Command{At: at, Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a"}}))
	must(s.Apply(6, &Command{At: at, Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a", Token: g.Token, ReuseCache: true}}))
	if hit := s.Tasks["j-r0"]; hit.State != montagev1.TaskState_TASK_STATE_SUCCEEDED || !hit.Cached || hit.Result.Key != "cache/old.mp4" || hit.Result.Duration != 5 {
		t.Errorf("reused task = %+v", hit)
	}
	// The source changed: its new render is another entry, and the newest.
	fresh := CacheEntryKey("k1", "etag=2")
	must(s.Apply(7, &Command{At: at, CacheAdd: &CacheEntry{Key: fresh, Plan: "k1", Identity: "etag=2", Object: "cache/new.mp4", Size: 11}}))
	if s.CacheLatest["k1"] != fresh || s.Cache[old] == nil || fresh == old {
		t.Errorf("latest %q, entries %v", s.CacheLatest["k1"], s.Cache)
	}
	must(s.Apply(8, &Command{At: at, Cancel: &CancelCmd{JobID: "j"}}))
	if r := s.Apply(9, &Command{At: at, CacheEvict: &CacheEvictCmd{Keys: []string{old, fresh}}}); len(r.Evicted) != 2 || len(s.Cache) != 0 || len(s.CacheLatest) != 0 || s.CacheBytes() != 0 {
		t.Errorf("evict after the job ended: %v, cache %v, latest %v", r.Evicted, s.Cache, s.CacheLatest)
	}
	// Reuse of an entry that is gone is refused: the agent renders instead.
	must(s.Apply(10, &Command{At: at, Submit: &SubmitCmd{Job: &Job{ID: "k"}, Tasks: []*Task{{ID: "k-r0", Type: montagev1.TaskType_TASK_TYPE_RENDER, CacheKey: "k1", MaxAttempts: 1, CacheEntry: "gone"}}}}))
	g = must(s.Apply(11, &Command{At: at, Grant: &GrantCmd{TaskID: "k-r0", AgentID: "a"}}))
	if r := s.Apply(12, &Command{At: at, Complete: &CompleteCmd{TaskID: "k-r0", AgentID: "a", Token: g.Token, ReuseCache: true}}); !errors.Is(r.Err, ErrNotRunnable) {
		t.Errorf("reuse of a missing entry: %v", r.Err)
	}
}

// The command that finishes a job says so, once: a success, a failure at
// the attempt limit, a cancel; nothing else reports an end.
func TestResponseNamesEndedJobs(t *testing.T) {
	l := newLog()
	register(l, "a1")
	ends := func(r Response) []montagev1.JobState { return r.Ended }
	if e := ends(l.apply(&Command{Submit: job("ok", 1, 1)})); e != nil {
		t.Fatalf("submit ended %v", e)
	}
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "ok-r0", AgentID: "a1"}})
	if e := ends(l.apply(&Command{Complete: &CompleteCmd{TaskID: "ok-r0", AgentID: "a1", Token: g.Token, Result: Result{Key: "s"}}})); e != nil {
		t.Fatalf("a render's completion ended %v", e)
	}
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "ok-concat", AgentID: "a1"}})
	r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "ok-concat", AgentID: "a1", Token: g.Token, Result: Result{Key: "m"}}})
	if len(r.Ended) != 1 || r.Ended[0] != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("the concat's completion ended %v, want [succeeded]", r.Ended)
	}
	l.apply(&Command{Submit: job("bad", 1, 1)})
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "bad-r0", AgentID: "a1"}})
	r = l.apply(&Command{Fail: &FailCmd{TaskID: "bad-r0", AgentID: "a1", Token: g.Token, Error: "x"}})
	if len(r.Ended) != 1 || r.Ended[0] != montagev1.JobState_JOB_STATE_FAILED {
		t.Fatalf("the last attempt's failure ended %v, want [failed]", r.Ended)
	}
	l.apply(&Command{Submit: job("gone", 1, 1)})
	r = l.apply(&Command{Cancel: &CancelCmd{JobID: "gone"}})
	if len(r.Ended) != 1 || r.Ended[0] != montagev1.JobState_JOB_STATE_CANCELED {
		t.Fatalf("cancel ended %v, want [canceled]", r.Ended)
	}
	if r := l.apply(&Command{Cancel: &CancelCmd{JobID: "gone"}}); r.Ended != nil {
		t.Fatalf("a refused second cancel ended %v", r.Ended)
	}
	checkIndex(t, l.s)
}

// An enrolment token registers one agent once, before it expires, under
// the name it was made for; it survives a snapshot until spent.
func TestEnrollmentIsSpentOnce(t *testing.T) {
	l := newLog()
	exp := t0.Add(time.Hour)
	if r := l.apply(&Command{Enroll: &EnrollCmd{Hash: "h1", Name: "garage-pc", ExpiresAt: exp}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := l.apply(&Command{Enroll: &EnrollCmd{Hash: "late", ExpiresAt: t0}}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("an enrolment already expired: %v", r.Err)
	}
	l.apply(&Command{Enroll: &EnrollCmd{Hash: "h2", ExpiresAt: exp}})
	restored := roundTrip(t, l.s)
	if e := restored.Enrollments["h1"]; e == nil || e.Name != "garage-pc" || !e.ExpiresAt.Equal(exp) {
		t.Fatalf("enrolment after restore: %+v", e)
	}
	if r := l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "a1", Name: "DESKTOP-1", Slots: 1}, Enroll: "h1"}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if a := l.s.Agents["a1"]; a.Name != "garage-pc" {
		t.Errorf("enrolled agent named %q, want the enrolment's name", a.Name)
	}
	l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "a1", Name: "DESKTOP-1", Slots: 2}}}) // a restart
	if a := l.s.Agents["a1"]; a.Name != "garage-pc" || a.Slots != 2 {
		t.Errorf("after re-registering: named %q with %d slots, want the enrolment's name kept", a.Name, a.Slots)
	}
	if r := l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "a2", Slots: 1}, Enroll: "h1"}}); !errors.Is(r.Err, ErrEnrollment) || l.s.Agents["a2"] != nil {
		t.Fatalf("second use of a token: %v", r.Err)
	}
	l.idx += 7200 // past the expiry (commands are stamped by index)
	if r := l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: "a3", Slots: 1}, Enroll: "h2"}}); !errors.Is(r.Err, ErrEnrollment) || l.s.Agents["a3"] != nil {
		t.Fatalf("an expired token: %v", r.Err)
	}
	if len(l.s.Enrollments) != 0 {
		t.Errorf("spent and expired enrolments kept: %v", l.s.Enrollments)
	}
}

// An optional task that fails for good leaves a warning, and what waits
// for it runs all the same.
func TestOptionalTaskFailureWarns(t *testing.T) {
	l := newLog()
	register(l, "a1")
	c := &SubmitCmd{Job: &Job{ID: "j", Name: "j"}, Tasks: []*Task{
		{ID: "j-r0", Type: montagev1.TaskType_TASK_TYPE_RENDER, MaxAttempts: 1},
		{ID: "j-t0", Type: montagev1.TaskType_TASK_TYPE_TRANSCRIBE, MaxAttempts: 1, Optional: true},
		{ID: "j-concat", Type: montagev1.TaskType_TASK_TYPE_CONCAT, HighlightIndex: -1, DependsOn: []string{"j-r0", "j-t0"}, MaxAttempts: 1},
	}}
	if r := l.apply(&Command{Submit: c}); r.Err != nil {
		t.Fatal(r.Err)
	}
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j-r0", AgentID: "a1"}})
	l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-r0", AgentID: "a1", Token: g.Token, Result: Result{Key: "s"}}})
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j-t0", AgentID: "a1"}})
	if r := l.apply(&Command{Fail: &FailCmd{TaskID: "j-t0", AgentID: "a1", Token: g.Token, Error: "no audio"}}); r.Ended != nil {
		t.Fatalf("an optional failure ended the job: %v", r.Ended)
	}
	j := l.s.Jobs["j"]
	if j.Terminal() || len(j.Warnings) != 1 || !strings.Contains(j.Warnings[0], "transcript of highlight 1") {
		t.Fatalf("job %s, warnings %v", j.State, j.Warnings)
	}
	runnable := slices.Collect(l.s.Runnable())
	if len(runnable) != 1 || runnable[0].ID != "j-concat" {
		t.Fatalf("runnable after the optional failure: %v", runnable)
	}
	if l.s.Agents["a1"].FailStreak != 0 || len(j.Blocked) != 0 {
		t.Errorf("an optional failure counted against the agent: streak %d, blocked %v", l.s.Agents["a1"].FailStreak, j.Blocked)
	}
	g = l.apply(&Command{Grant: &GrantCmd{TaskID: "j-concat", AgentID: "a1"}})
	r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "j-concat", AgentID: "a1", Token: g.Token, Result: Result{Key: "m"}}})
	if len(r.Ended) != 1 || r.Ended[0] != montagev1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("the montage did not finish: %v, job %s", r.Ended, l.s.Jobs["j"].State)
	}
	checkIndex(t, l.s)
}

// A coordinator's API address is recorded, replaced, forgotten, and kept
// through a snapshot; one without an id is refused.
func TestCoordinatorAddresses(t *testing.T) {
	l := newLog()
	for _, c := range []CoordinatorCmd{{ID: "c1", APIAddr: "http://a:7400"}, {ID: "c2", APIAddr: "http://b:7400"},
		{ID: "c1", APIAddr: "http://a2:7400"}, {ID: "c3", APIAddr: "http://c:7400"}, {ID: "c3"}} {
		if r := l.apply(&Command{Coordinator: &c}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := l.apply(&Command{Coordinator: &CoordinatorCmd{APIAddr: "http://x"}}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("a coordinator without an id: %v", r.Err)
	}
	want := map[string]string{"c1": "http://a2:7400", "c2": "http://b:7400"}
	restored := roundTrip(t, l.s)
	for name, got := range map[string]map[string]string{"applied": l.s.Coordinators, "restored": restored.Coordinators} {
		if !maps.Equal(got, want) {
			t.Errorf("%s: coordinators %v, want %v", name, got, want)
		}
	}
}

// A good result with the agent's note adds it to the job's warnings, once,
// naming the task; the note is kept with the result through a snapshot.
func TestResultWarningReachesTheJob(t *testing.T) {
	l := newLog()
	register(l, "a1")
	l.apply(&Command{Submit: job("j1", 1, 3)})
	g := l.apply(&Command{Grant: &GrantCmd{TaskID: "j1-r0", AgentID: "a1"}})
	if r := l.apply(&Command{Complete: &CompleteCmd{TaskID: "j1-r0", AgentID: "a1", Token: g.Token,
		Result: Result{Key: "k", Warning: "timing is coarse"}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if w := l.s.Jobs["j1"].Warnings; len(w) != 1 || w[0] != "render of highlight 1 (task j1-r0): timing is coarse" {
		t.Fatalf("warnings %q", w)
	}
	restored := roundTrip(t, l.s)
	if r := restored.Tasks["j1-r0"].Result; r == nil || r.Warning != "timing is coarse" || len(restored.Jobs["j1"].Warnings) != 1 {
		t.Errorf("after a snapshot: result %+v, warnings %q", r, restored.Jobs["j1"].Warnings)
	}
}
