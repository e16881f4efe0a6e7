// Package leader holds what a coordinator does on its own while it leads,
// apart from the API that answers calls (as Nomad keeps leader.go,
// heartbeat.go and core_sched.go apart from its endpoints): the lease
// timers and their expiry, who is online, storage housekeeping, the
// segment cache and the garbage collection of agents.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/lease"
	"github.com/stream-montages/montage/coordinator/schedule"
	"github.com/stream-montages/montage/internal/clock"
)

// Config tunes the leader's work.
type Config struct {
	LeaseTTL time.Duration // lifetime of a lease after each renewal
	// LeaseGrace is added to every inherited lease when this node becomes
	// leader, so agents have time to find it before anything expires.
	LeaseGrace time.Duration
	// OnlineWindow is how long after its last call an agent counts as
	// online (a long poll and three lease lifetimes).
	OnlineWindow    time.Duration
	JanitorInterval time.Duration
	Retention       time.Duration
	PurgeDelay      time.Duration
	// CacheBudget bounds the segment cache in bytes: 0 means no bound, a
	// negative value turns caching off.
	CacheBudget int64
	// AgentGC forgets agents unseen this long that hold no lease (0: never).
	AgentGC time.Duration
	// BlockAfter and QuarantineAfter are the failure limits a refused
	// read-back counts against (0: fsm's defaults).
	BlockAfter, QuarantineAfter int
	// OnLeases hears how many leases this node times (0 when it stops
	// leading); OnApplied each response to a command it proposed; OnEvict
	// the cache entries and bytes an eviction removed; OnReadBack the time
	// of a result's read-back after its report. Each may be nil.
	OnLeases   func(n int)
	OnApplied  func(fsm.Response)
	OnEvict    func(entries int, bytes int64)
	OnReadBack func(took time.Duration)
}

type hooks struct {
	cfg    *Config
	expire func(taskID string) // set by OnExpire
}

func (h *hooks) expired(taskID string) {
	if h.expire != nil {
		h.expire(taskID)
	}
}

func (h *hooks) applied(r fsm.Response) {
	if h.cfg.OnApplied != nil {
		h.cfg.OnApplied(r)
	}
}

func (h *hooks) evicted(entries int, bytes int64) {
	if h.cfg.OnEvict != nil {
		h.cfg.OnEvict(entries, bytes)
	}
}

func (h *hooks) readBack(took time.Duration) {
	if h.cfg.OnReadBack != nil {
		h.cfg.OnReadBack(took)
	}
}

// OnExpire sets what hears of each expired lease, before Run starts.
func (l *Leader) OnExpire(f func(taskID string)) { l.hooks.expire = f }

func (h *hooks) leases(n int) {
	if h.cfg.OnLeases != nil {
		h.cfg.OnLeases(n)
	}
}

// Leader is one coordinator's leader-side work. Every coordinator has one;
// it acts only while its node leads.
type Leader struct {
	node  *cluster.Node
	store blob.Store
	clock clock.Clock
	cfg   Config
	log   *slog.Logger
	hooks hooks
	// Leases times the leases of the replicated state (renewals stay out
	// of raft).
	Leases *lease.Table

	cacheSem   chan struct{} // bounds the segment copies running at once
	verifyKick chan struct{}

	mu       sync.Mutex
	lastSeen map[string]time.Time // agent id → last call, on this node
	// leaderSince is when this node last became leader: until agents have
	// had time to call it, it cannot tell who is online.
	leaderSince time.Time
}

// New makes a leader for node.
func New(node *cluster.Node, store blob.Store, clk clock.Clock, cfg Config, log *slog.Logger) *Leader {
	l := &Leader{node: node, store: store, clock: clk, cfg: cfg, log: log, Leases: lease.NewTable(cfg.LeaseTTL), lastSeen: map[string]time.Time{},
		cacheSem: make(chan struct{}, 2), verifyKick: make(chan struct{}, 1)}
	l.hooks = hooks{cfg: &l.cfg}
	return l
}

// LeaderSince is when this node last took over as leader (zero: never).
func (l *Leader) LeaderSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaderSince
}

// Seen records a call from an agent.
func (l *Leader) Seen(agentID string) {
	l.mu.Lock()
	l.lastSeen[agentID] = l.clock.Now()
	l.mu.Unlock()
}

// LastSeen is when this node last heard from an agent.
func (l *Leader) LastSeen(agentID string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.lastSeen[agentID]
	return t, ok
}

// Forget drops what this node knows of an agent that was removed.
func (l *Leader) Forget(agentID string) {
	l.mu.Lock()
	delete(l.lastSeen, agentID)
	l.mu.Unlock()
}

// Online reports whether an agent called this leader recently. In that
// long after an election every registered agent counts as online: the new
// leader has not heard from anyone yet, and must not decide (an encoder for
// a job, say) as if the farm were empty.
func (l *Leader) Online(agentID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if !l.leaderSince.IsZero() && now.Sub(l.leaderSince) <= l.cfg.OnlineWindow {
		return true
	}
	t, ok := l.lastSeen[agentID]
	return ok && now.Sub(t) <= l.cfg.OnlineWindow
}

// propose applies a command stamped with this leader's clock; a state
// machine error comes back as an error too.
func (l *Leader) propose(c *fsm.Command) (fsm.Response, error) {
	c.At = l.clock.Now().UTC()
	resp, err := l.node.Apply(c)
	if err != nil {
		return resp, err
	}
	l.hooks.applied(resp)
	if resp.Err != nil {
		return resp, fmt.Errorf("apply: %w", resp.Err)
	}
	return resp, nil
}

// Run keeps the lease table in step with leadership, expires leases whose
// agents stopped renewing them and does storage housekeeping. It returns
// when ctx ends.
func (l *Leader) Run(ctx context.Context) {
	tick := l.cfg.LeaseTTL / 5
	if tick < 50*time.Millisecond {
		tick = 50 * time.Millisecond
	}
	leader := false
	leaderCh := l.node.LeaderCh()
	// Leadership gained before this subscription sent its edge to nobody:
	// take over now rather than a tick later.
	if l.node.IsLeader() && l.node.Ready() {
		leader = true
		l.TakeOver()
	}
	// Housekeeping has its own loop: a multi-GB copy must not hold up lease
	// expiry.
	go l.janitorLoop(ctx)
	go l.verifyLoop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-leaderCh:
			leader = isLeader
			if leader {
				l.TakeOver()
			} else {
				l.lostLeadership()
			}
		case <-l.clock.After(tick):
			if !leader && l.node.IsLeader() && l.node.Ready() {
				// LeaderCh drops edges when nobody reads it in time; catch up.
				leader = true
				l.TakeOver()
			}
			if leader && !l.node.IsLeader() {
				leader = false
				l.lostLeadership()
			}
			if leader {
				l.expireLeases()
			}
		}
	}
}

// handBackAfterHours gives back the work of agents whose schedule closed
// longer than their grace ago (a grace of 0 lets running work finish).
// The next heartbeat tells the agent its lease is gone, and it stops.
func (l *Leader) handBackAfterHours() {
	now := l.clock.Now()
	type gone struct {
		task, agent string
		token       uint64
	}
	var back []gone
	l.node.View(func(st *fsm.State) {
		for _, t := range st.LeasedTasks() {
			a := st.Agents[t.AgentID]
			if a == nil || a.Schedule == "" || a.ScheduleGrace <= 0 {
				continue
			}
			if !schedule.Allows(a.Schedule, a.TimeZone, now) && !schedule.Allows(a.Schedule, a.TimeZone, now.Add(-a.ScheduleGrace)) &&
				now.Sub(t.LeasedAt) > a.ScheduleGrace {
				back = append(back, gone{t.ID, t.AgentID, t.LeaseToken})
			}
		}
	})
	for _, g := range back {
		if _, err := l.propose(&fsm.Command{Fail: &fsm.FailCmd{TaskID: g.task, AgentID: g.agent, Token: g.token, Handback: true,
			Error: "handed back: the agent's schedule closed and its grace passed"}}); err != nil {
			l.log.Warn("hand back after hours", "task", g.task, "err", err)
			continue
		}
		l.Leases.Drop(g.task)
		l.log.Info("work handed back: the agent's schedule closed", "task", g.task, "agent", g.agent)
	}
}

// TakeOver rebuilds the lease table from replicated state, giving every
// lease a grace period: the old leader's timers died with it.
func (l *Leader) TakeOver() {
	if err := l.node.Barrier(10 * time.Second); err != nil {
		l.log.Warn("barrier after election failed", "err", err)
	}
	now := l.clock.Now().Add(l.cfg.LeaseGrace)
	var entries []lease.Entry
	l.node.View(func(st *fsm.State) {
		for _, t := range st.LeasedTasks() {
			entries = append(entries, lease.Entry{TaskID: t.ID, AgentID: t.AgentID, Token: t.LeaseToken, Deadline: now.Add(l.cfg.LeaseTTL), Since: l.clock.Now()})
		}
	})
	l.Leases.Reset(entries)
	l.mu.Lock()
	l.leaderSince = l.clock.Now()
	l.mu.Unlock()
	l.log.Info("leadership gained; leases inherited", "leases", len(entries), "grace", l.cfg.LeaseGrace)
}

// lostLeadership forgets what only a leader keeps: its lease timers (the
// gauge of them with them, so a demoted node stops reporting leases).
func (l *Leader) lostLeadership() {
	l.Leases.Reset(nil)
	l.hooks.leases(0)
}

func (l *Leader) expireLeases() {
	// Every lease in the replicated state must be timed here, or one whose
	// agent died would never expire: adopt any the table lacks (granted in
	// the moment between an election and the table's rebuild, say).
	now := l.clock.Now()
	l.node.View(func(st *fsm.State) {
		for _, t := range st.LeasedTasks() {
			if e, ok := l.Leases.Get(t.ID); !ok || e.Token != t.LeaseToken {
				l.Leases.Track(t.ID, t.AgentID, t.LeaseToken, now)
			}
		}
	})
	l.handBackAfterHours()
	for _, e := range l.Leases.Expired(l.clock.Now()) {
		resp, err := l.node.Apply(&fsm.Command{At: l.clock.Now(), Expire: &fsm.ExpireCmd{TaskID: e.TaskID, Token: e.Token}})
		if err != nil {
			l.log.Warn("expire lease", "task", e.TaskID, "err", err)
			return
		}
		l.hooks.applied(resp)
		l.Leases.Drop(e.TaskID)
		if resp.Err == nil {
			l.hooks.expired(e.TaskID)
			l.log.Info("lease expired; task requeued or failed", "task", e.TaskID, "agent", e.AgentID, "token", e.Token)
		}
	}
	l.hooks.leases(l.Leases.Len())
}
