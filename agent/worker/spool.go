package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/stream-montages/montage/agent/disk"
	"github.com/stream-montages/montage/agent/media"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// spoolMax bounds the segments an agent keeps for concats (a quarter of
// its free disk when that is less): an hour of 1080p is about 2 GB.
const spoolMax = 4 << 30

// spoolIdle is how long a montage's kept segments wait for its concat.
// A concat that goes to another agent leaves them here; this frees them.
const spoolIdle = 30 * time.Minute

// spool keeps the committed segments this agent rendered until their
// montage's concat. It encodes their audio in the concat's order while the
// rest of the montage renders, so a concat that comes here finds most of
// its audio encoded and its segments on disk: the concat of a one-agent
// farm is then a copy. Anything unusual (a segment rendered elsewhere,
// another order, a restart) only means the concat does that work itself.
type spool struct {
	dir   string
	tools media.Tools
	log   *slog.Logger
	ctx   context.Context // the agent's lifetime: encodes outlive tasks
	now   func() time.Time
	// room says how many bytes the spool may hold now.
	room func(held int64) int64

	mu     sync.Mutex
	jobs   map[string]*spooledJob
	staged map[string]stagedSegment // by task: uploaded, not yet committed
	bytes  int64
}

type keptSegment struct {
	path    string
	sha     string
	size    int64
	seconds float64
}

type stagedSegment struct {
	keptSegment
	job          string
	index, count int
	bitrate      string
}

type spooledJob struct {
	id      string
	dir     string
	count   int
	bitrate string
	segs    map[int]keptSegment
	audio   *montageAudio // started with the first segment
	next    int           // segments fed to audio
	feeding bool
	taken   bool
	used    time.Time
	// pumping counts the goroutine feeding audio: take waits for it.
	pumping sync.WaitGroup
}

func newSpool(ctx context.Context, dir string, tools media.Tools, log *slog.Logger) (*spool, error) {
	// Segments kept before a restart belong to concats that have moved on.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{dir: dir, tools: tools, log: log, ctx: ctx, now: time.Now,
		jobs: map[string]*spooledJob{}, staged: map[string]stagedSegment{}}
	s.room = func(held int64) int64 {
		avail, err := disk.Available(dir)
		if err != nil {
			return 0
		}
		return min(spoolMax, (avail+held)/4)
	}
	return s, nil
}

// stage moves a render's uploaded output into the spool, to keep once the
// coordinator has committed it (keep) or drop if it did not (unstage).
// bitrate is the montage's audio bitrate as the concat resolves it. It
// reports whether it took the file.
func (s *spool) stage(l *montagev1.Lease, out, bitrate string, res *montagev1.TaskResult) bool {
	if s == nil || l.GetType() != montagev1.TaskType_TASK_TYPE_RENDER || l.GetSegmentCount() <= 0 ||
		l.GetSegmentIndex() < 0 || l.GetSegmentIndex() >= l.GetSegmentCount() || res.GetSha256() == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(l.GetJobId())
	if s.bytes+res.GetSize() > s.room(s.bytes) {
		s.evictLocked(l.GetJobId(), res.GetSize())
		if s.bytes+res.GetSize() > s.room(s.bytes) {
			return false
		}
	}
	dir := filepath.Join(s.dir, l.GetJobId())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false
	}
	// Named by grant too: a segment rendered again never overwrites the
	// one kept (and perhaps being fed) before it.
	path := filepath.Join(dir, fmt.Sprintf("seg-%06d-%d.mp4", l.GetSegmentIndex(), l.GetToken()))
	if err := os.Rename(out, path); err != nil {
		return false
	}
	s.bytes += res.GetSize()
	s.staged[l.GetTaskId()] = stagedSegment{
		keptSegment: keptSegment{path: path, sha: res.GetSha256(), size: res.GetSize(), seconds: res.GetDurationSeconds()},
		job:         l.GetJobId(), index: int(l.GetSegmentIndex()), count: int(l.GetSegmentCount()), bitrate: bitrate,
	}
	return true
}

// unstage drops a staged segment the coordinator did not commit.
func (s *spool) unstage(taskID string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.staged[taskID]; ok {
		delete(s.staged, taskID)
		_ = os.Remove(st.path)
		s.bytes -= st.size
	}
}

// keep files a committed segment under its montage and feeds the
// montage's audio as far as the segments run on without a gap.
func (s *spool) keep(taskID string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.staged[taskID]
	if !ok {
		return
	}
	delete(s.staged, taskID)
	j := s.jobs[st.job]
	if j == nil {
		j = &spooledJob{id: st.job, dir: filepath.Dir(st.path), count: st.count, bitrate: st.bitrate, segs: map[int]keptSegment{}}
		s.jobs[st.job] = j
	}
	if j.taken || j.count != st.count || st.bitrate != j.bitrate {
		_ = os.Remove(st.path)
		s.bytes -= st.size
		return
	}
	if old, ok := j.segs[st.index]; ok { // rendered again: the newer one counts
		_ = os.Remove(old.path)
		s.bytes -= old.size
	}
	j.segs[st.index] = st.keptSegment
	j.used = s.now()
	if st.index == 0 && j.audio == nil && j.next == 0 && st.bitrate != "" {
		a, err := startMontageAudio(s.ctx, s.tools, st.bitrate, filepath.Join(j.dir, "audio.m4a"), true)
		if err != nil {
			s.log.Warn("cannot encode the montage's audio ahead; the concat will", "job", j.id, "err", err)
		} else {
			j.audio = a
		}
	}
	if j.audio != nil && !j.feeding {
		if _, ok := j.segs[j.next]; ok {
			j.feeding = true
			j.pumping.Add(1)
			go s.pump(j)
		}
	}
}

// pump feeds the job's audio the segments that follow what it has, in
// order, until one is missing or the concat takes the job.
func (s *spool) pump(j *spooledJob) {
	defer j.pumping.Done()
	for {
		s.mu.Lock()
		seg, ok := j.segs[j.next]
		if !ok || j.taken || j.audio.err != nil {
			j.feeding = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		err := j.audio.add(s.ctx, seg.path, seg.sha, seg.seconds)
		s.mu.Lock()
		if err == nil {
			j.next++
		} else if s.ctx.Err() == nil {
			s.log.Warn("montage audio ahead of the concat stopped; the concat will encode it", "job", j.id, "err", err)
		}
		s.mu.Unlock()
	}
}

// take hands a montage's kept segments and audio to its concat; nil when
// there are none. The spool forgets them: the concat removes them.
func (s *spool) take(jobID string) *spooledJob {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	j := s.jobs[jobID]
	if j != nil {
		j.taken = true
		delete(s.jobs, jobID)
		for _, k := range j.segs {
			s.bytes -= k.size
		}
	}
	s.mu.Unlock()
	if j != nil {
		if j.audio != nil {
			j.audio.hurry()
		}
		j.pumping.Wait() // a segment being fed finishes first
	}
	return j
}

// discard removes a taken job's files and stops its encode.
func (j *spooledJob) discard() {
	if j == nil {
		return
	}
	if j.audio != nil {
		j.audio.abort()
	}
	_ = os.RemoveAll(j.dir)
}

// keptJobs lists the montages this spool keeps segments of, staged or kept,
// sorted: the coordinator leaves their concats to this agent a moment.
func (s *spool) keptJobs() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string]bool{}
	for id := range s.jobs {
		set[id] = true
	}
	for _, st := range s.staged {
		set[st.job] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// isStaged reports whether a render's output waits here for its commit.
func (s *spool) isStaged(taskID string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.staged[taskID]
	return ok
}

// held is what the spool keeps on disk.
func (s *spool) held() int64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// free drops every kept montage: a task needs the disk more.
func (s *spool) free() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evictLocked("", -1)
}

// expireLocked drops montages whose concat has not come for spoolIdle,
// other than keepJob.
func (s *spool) expireLocked(keepJob string) {
	for id, j := range s.jobs {
		if id != keepJob && s.now().Sub(j.used) > spoolIdle {
			s.dropLocked(j)
		}
	}
}

// evictLocked drops the least recently used montages other than keepJob
// until need more bytes fit (need < 0: all of them).
func (s *spool) evictLocked(keepJob string, need int64) {
	var js []*spooledJob
	for id, j := range s.jobs {
		if id != keepJob {
			js = append(js, j)
		}
	}
	sort.Slice(js, func(a, b int) bool { return js[a].used.Before(js[b].used) })
	for _, j := range js {
		if need >= 0 && s.bytes+need <= s.room(s.bytes) {
			return
		}
		s.dropLocked(j)
	}
}

func (s *spool) dropLocked(j *spooledJob) {
	j.taken = true
	delete(s.jobs, j.id)
	for _, k := range j.segs {
		s.bytes -= k.size
	}
	s.log.Info("kept segments dropped before their concat came", "job", j.id, "segments", len(j.segs))
	go func() {
		j.pumping.Wait()
		j.discard()
	}()
}

// segment is the kept file of the concat's segment i when it is the very
// object the coordinator committed (same SHA-256 and size, still on disk);
// "" otherwise.
func (j *spooledJob) segment(i int, s *montagev1.ConcatSegment) string {
	if j == nil {
		return ""
	}
	k, ok := j.segs[i]
	if !ok || k.sha == "" || k.sha != s.GetSha256() || k.size != s.GetSize() {
		return ""
	}
	if st, err := os.Stat(k.path); err != nil || st.Size() != k.size {
		return ""
	}
	return k.path
}
