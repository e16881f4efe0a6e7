// Package lease keeps the leader's in-memory lease timers. Renewals never go
// through raft (as Nomad keeps heartbeats out of raft); only an expiry does,
// as a command the caller proposes for each entry Expired returns.
package lease

import (
	"sort"
	"sync"
	"time"
)

// Entry is one live lease as the leader sees it.
type Entry struct {
	TaskID   string
	AgentID  string
	Token    uint64
	Deadline time.Time
	Progress float64
	// Since is when this leader started timing the lease (its grant, or
	// its inheritance after an election).
	Since time.Time
}

// Table maps task ids to their live leases. It is safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]*Entry
}

// NewTable makes a table whose leases last ttl after each renewal.
func NewTable(ttl time.Duration) *Table {
	return &Table{ttl: ttl, entries: map[string]*Entry{}}
}

// TTL is the lease lifetime granted on each renewal.
func (t *Table) TTL() time.Duration { return t.ttl }

// Track starts timing a lease just granted (or inherited by a new leader,
// with now moved forward by the grace period).
func (t *Table) Track(taskID, agentID string, token uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries[taskID] = &Entry{TaskID: taskID, AgentID: agentID, Token: token, Deadline: now.Add(t.ttl), Since: now}
}

// Holding lists the leases of one agent, by task id.
func (t *Table) Holding(agentID string) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for _, e := range t.entries {
		if e.AgentID == agentID {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].TaskID < out[b].TaskID })
	return out
}

// Renew extends the lease if agentID holds it under token, recording the
// progress the agent reported. It reports whether the lease is still live.
func (t *Table) Renew(taskID, agentID string, token uint64, progress float64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[taskID]
	if e == nil || e.Token != token || e.AgentID != agentID {
		return false
	}
	e.Deadline = now.Add(t.ttl)
	if progress >= 0 && progress <= 1 {
		e.Progress = progress
	}
	return true
}

// Drop forgets a lease that ended (completed, failed, canceled).
func (t *Table) Drop(taskID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, taskID)
}

// Get returns a copy of a task's lease entry.
func (t *Table) Get(taskID string) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[taskID]
	if e == nil {
		return Entry{}, false
	}
	return *e, true
}

// Expired returns the leases whose deadline has passed, oldest first. They
// stay in the table until Drop, so a failed expiry proposal is retried.
func (t *Table) Expired(now time.Time) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for _, e := range t.entries {
		if now.After(e.Deadline) {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Deadline.Before(out[b].Deadline) })
	return out
}

// Reset replaces the table, as a new leader does from the replicated state.
func (t *Table) Reset(entries []Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = map[string]*Entry{}
	for i := range entries {
		e := entries[i]
		t.entries[e.TaskID] = &e
	}
}

// Len is the number of live leases.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
