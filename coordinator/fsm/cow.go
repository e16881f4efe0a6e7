package fsm

import (
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
	if i, ok := s.orderOf(j); ok {
		s.ix.order[i] = &c
	}
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
// never changes what it holds; reading it needs no lock.
type Frozen struct {
	AppliedIndex uint64
	Jobs         []*Job // by submission
	Tasks        map[string]*Task
	Agents       map[string]*Agent
	Cache        map[string]*CacheEntry
	CacheLatest  map[string]string
}

// Freeze takes the view. It costs a copy of the job order (a slice of
// pointers: a week of finished jobs is a memcpy) and of the smaller maps of
// pointers, not of the records: it is the only part of a snapshot that
// holds up Apply.
func (s *State) Freeze() *Frozen {
	s.gen++
	return &Frozen{
		AppliedIndex: s.AppliedIndex,
		Jobs:         slices.Clone(s.ix.order),
		Tasks:        maps.Clone(s.Tasks),
		Agents:       maps.Clone(s.Agents),
		Cache:        maps.Clone(s.Cache),
		CacheLatest:  maps.Clone(s.CacheLatest),
	}
}
