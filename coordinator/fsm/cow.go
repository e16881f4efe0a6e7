package fsm

import (
	"iter"
	"maps"
	"slices"
)

// Snapshots are written from a point-in-time view while Apply goes on.
// Taking the view copies only the maps of pointers (Freeze); the records
// themselves are shared until Apply changes one, and Apply changes a record
// only through the accessors below, which copy a record that an unwritten
// snapshot may still read (its gen is older than the state's).

// job returns job id for changing, or nil.
func (s *State) job(id string) *Job {
	j := s.Jobs[id]
	if j == nil || j.gen == s.gen {
		return j
	}
	c := *j
	c.gen = s.gen
	c.TaskIDs = slices.Clone(j.TaskIDs)
	c.Outputs = maps.Clone(j.Outputs)
	c.OutputSums = maps.Clone(j.OutputSums)
	c.Warnings = slices.Clone(j.Warnings)
	c.Sources = slices.Clone(j.Sources)
	c.Failures = maps.Clone(j.Failures)
	c.Blocked = slices.Clone(j.Blocked)
	if j.Summary != nil {
		sum := *j.Summary
		c.Summary = &sum
	}
	s.Jobs[id] = &c
	s.ix.order.Replace(&c, s.gen)
	return &c
}

// task returns task id for changing, or nil.
func (s *State) task(id string) *Task {
	t := s.Tasks[id]
	if t == nil || t.gen == s.gen {
		return t
	}
	c := *t
	c.gen = s.gen
	c.DependsOn = slices.Clone(t.DependsOn)
	c.Requires = slices.Clone(t.Requires)
	c.FailCounts = maps.Clone(t.FailCounts)
	// Result and Render are replaced whole, never changed in place.
	s.Tasks[id] = &c
	return &c
}

// agent returns agent id for changing, or nil.
func (s *State) agent(id string) *Agent {
	a := s.Agents[id]
	if a == nil || a.gen == s.gen {
		return a
	}
	c := *a
	c.gen = s.gen
	c.Labels = maps.Clone(a.Labels)
	c.Provides = slices.Clone(a.Provides)
	s.Agents[id] = &c
	return &c
}

// cacheEntry returns cache entry key for changing, or nil.
func (s *State) cacheEntry(key string) *CacheEntry {
	e := s.Cache[key]
	if e == nil || e.gen == s.gen {
		return e
	}
	c := *e
	c.gen = s.gen
	s.Cache[key] = &c
	return &c
}

// Frozen is a point-in-time view of the records, for a snapshot. Apply
// never changes what it holds; reading it needs no lock. The slices are in
// no particular order but Jobs (by submission); WriteTo sorts the rest.
type Frozen struct {
	AppliedIndex uint64
	Jobs         [][]*Job // chunks of jobs, by submission
	Tasks        []*Task
	Agents       []*Agent
	Cache        []*CacheEntry
	CacheLatest  [][2]string // plan, entry key
	Enrollments  []Enrollment
	Coordinators [][2]string // id, API address
	// The library's records (replaced, never changed in place: shared).
	Highlights       []*Highlight
	Feeds            []*Feed
	MontageSchedules []*MontageSchedule
	Catalog          []*Montage
}

// Sizes is how many entries each part of the view will hold: chunks of
// jobs, tasks, agents, cache entries.
type Sizes struct{ JobChunks, Tasks, Agents, Cache int }

// Sizes reports the state's counts, to allocate a Frozen before the lock
// that Freeze needs is taken.
func (s *State) Sizes() Sizes {
	return Sizes{JobChunks: len(s.ix.order.chunks), Tasks: len(s.Tasks), Agents: len(s.Agents), Cache: len(s.Cache)}
}

// NewFrozen allocates a view with room for n records (and some to spare).
func NewFrozen(n Sizes) *Frozen {
	slack := func(k int) int { return k + k/8 + 64 }
	f := &Frozen{Jobs: make([][]*Job, 0, slack(n.JobChunks)), Tasks: make([]*Task, slack(n.Tasks)),
		Agents: make([]*Agent, 0, slack(n.Agents)), Cache: make([]*CacheEntry, 0, slack(n.Cache)),
		CacheLatest: make([][2]string, 0, slack(n.Cache))}
	// Touch the task slice now, so that the page faults of fresh memory
	// are taken here and not while Freeze holds the lock.
	for i := range f.Tasks {
		f.Tasks[i] = nil
	}
	f.Tasks = f.Tasks[:0]
	return f
}

// Freeze takes the view into a new Frozen.
func (s *State) Freeze() *Frozen { return s.FreezeInto(NewFrozen(s.Sizes())) }

// FreezeInto takes the view into f (made by NewFrozen beforehand, outside
// the lock): copies of pointers into slices that already have room, not
// of records, so it allocates nothing; the jobs are shared by chunk (see
// jobList). It is the only part of a snapshot that holds up Apply.
func (s *State) FreezeInto(f *Frozen) *Frozen {
	s.gen++
	f.AppliedIndex = s.AppliedIndex
	f.Jobs = s.ix.order.view(f.Jobs[:0])
	f.Tasks = f.Tasks[:0]
	for _, t := range s.Tasks {
		f.Tasks = append(f.Tasks, t)
	}
	f.Agents = f.Agents[:0]
	for _, a := range s.Agents {
		f.Agents = append(f.Agents, a)
	}
	f.Cache = f.Cache[:0]
	for _, e := range s.Cache {
		f.Cache = append(f.Cache, e)
	}
	f.CacheLatest = f.CacheLatest[:0]
	for p, k := range s.CacheLatest {
		f.CacheLatest = append(f.CacheLatest, [2]string{p, k})
	}
	f.Enrollments = f.Enrollments[:0]
	for _, e := range s.Enrollments { // a handful: values, copied
		f.Enrollments = append(f.Enrollments, *e)
	}
	f.Coordinators = f.Coordinators[:0]
	for id, addr := range s.Coordinators {
		f.Coordinators = append(f.Coordinators, [2]string{id, addr})
	}
	f.Highlights = f.Highlights[:0]
	for _, h := range s.Highlights {
		f.Highlights = append(f.Highlights, h)
	}
	f.Feeds = f.Feeds[:0]
	for _, x := range s.Feeds {
		f.Feeds = append(f.Feeds, x)
	}
	f.MontageSchedules = f.MontageSchedules[:0]
	for _, x := range s.MontageSchedules {
		f.MontageSchedules = append(f.MontageSchedules, x)
	}
	f.Catalog = f.Catalog[:0]
	for _, x := range s.Catalog {
		f.Catalog = append(f.Catalog, x)
	}
	return f
}

// jobs yields the view's jobs by submission.
func (f *Frozen) jobs() iter.Seq[*Job] {
	return func(yield func(*Job) bool) {
		for _, c := range f.Jobs {
			for _, j := range c {
				if !yield(j) {
					return
				}
			}
		}
	}
}

func (f *Frozen) jobCount() int {
	n := 0
	for _, c := range f.Jobs {
		n += len(c)
	}
	return n
}
