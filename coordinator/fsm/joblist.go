package fsm

import (
	"cmp"
	"iter"
	"slices"
	"sort"
)

// jobList holds every job in submission order (by Seq), in chunks that a
// snapshot shares: Freeze copies the list of chunks, not the jobs, and a
// change to a chunk a snapshot still shares copies that chunk first (at
// most chunkSize pointers). So taking a view of a week of jobs costs about
// a hundred pointers, whatever the garbage collector is doing.
type jobList struct {
	chunks []*jobChunk
	n      int
}

type jobChunk struct {
	gen  uint64
	jobs []*Job
}

const chunkSize = 1024

func (l *jobList) Len() int { return l.n }

// writable returns chunk ci, copied first if it is shared with a view.
func (l *jobList) writable(ci int, gen uint64) *jobChunk {
	c := l.chunks[ci]
	if c.gen != gen {
		c = &jobChunk{gen: gen, jobs: slices.Clone(c.jobs)}
		l.chunks[ci] = c
	}
	return c
}

// Append adds the newest job (its Seq is above every other's).
func (l *jobList) Append(j *Job, gen uint64) {
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1].jobs) >= chunkSize {
		l.chunks = append(l.chunks, &jobChunk{gen: gen, jobs: make([]*Job, 0, chunkSize)})
	}
	c := l.writable(len(l.chunks)-1, gen)
	c.jobs = append(c.jobs, j)
	l.n++
}

// find locates the job with seq.
func (l *jobList) find(seq uint64) (ci, i int, ok bool) {
	ci = sort.Search(len(l.chunks), func(k int) bool {
		js := l.chunks[k].jobs
		return js[len(js)-1].Seq >= seq
	})
	if ci == len(l.chunks) {
		return 0, 0, false
	}
	i, ok = slices.BinarySearchFunc(l.chunks[ci].jobs, seq, func(o *Job, s uint64) int { return cmp.Compare(o.Seq, s) })
	return ci, i, ok
}

// Replace puts j in place of the job with its Seq (a copied record).
func (l *jobList) Replace(j *Job, gen uint64) {
	if ci, i, ok := l.find(j.Seq); ok {
		l.writable(ci, gen).jobs[i] = j
	}
}

// Remove drops the job with j's Seq.
func (l *jobList) Remove(j *Job, gen uint64) {
	ci, i, ok := l.find(j.Seq)
	if !ok {
		return
	}
	c := l.writable(ci, gen)
	c.jobs = slices.Delete(c.jobs, i, i+1)
	l.n--
	if len(c.jobs) == 0 {
		l.chunks = slices.Delete(l.chunks, ci, ci+1)
	}
}

// All yields the jobs oldest first; Backward newest first.
func (l *jobList) All() iter.Seq[*Job] {
	return func(yield func(*Job) bool) {
		for _, c := range l.chunks {
			for _, j := range c.jobs {
				if !yield(j) {
					return
				}
			}
		}
	}
}

func (l *jobList) Backward() iter.Seq[*Job] {
	return func(yield func(*Job) bool) {
		for ci := len(l.chunks) - 1; ci >= 0; ci-- {
			js := l.chunks[ci].jobs
			for i := len(js) - 1; i >= 0; i-- {
				if !yield(js[i]) {
					return
				}
			}
		}
	}
}

// view returns the chunks' jobs as they are now; the caller bumps the
// state's gen right after, so that no later change touches them.
func (l *jobList) view(into [][]*Job) [][]*Job {
	for _, c := range l.chunks {
		into = append(into, c.jobs)
	}
	return into
}
