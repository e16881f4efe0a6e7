package cluster

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stream-montages/montage/coordinator/fsm"
)

// machine adapts fsm.State to raft.FSM, tells watchers about changes and
// wakes lease polls that can take new work.
type machine struct {
	mu      sync.RWMutex
	state   *fsm.State
	changed chan struct{}

	wmu     sync.Mutex
	waiters map[*waiter]struct{}

	m machineMetrics
}

// waiter is a lease poll waiting for work it could take.
type waiter struct {
	agentID  string
	provides []string
	ch       chan struct{}
}

type machineMetrics struct {
	applySeconds   prometheus.Histogram
	pauseSeconds   prometheus.Histogram
	pauseMax       prometheus.Gauge
	writeSeconds   prometheus.Histogram
	writeMax       prometheus.Gauge
	maxWrite       time.Duration
	snapshotBytes  prometheus.Gauge
	restoreSeconds prometheus.Gauge
	wakes          *prometheus.CounterVec
	maxPause       time.Duration
	maxMu          sync.Mutex
}

func newMachine() *machine {
	return &machine{state: fsm.New(), changed: make(chan struct{}), waiters: map[*waiter]struct{}{}, m: machineMetrics{
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "montage_fsm_apply_seconds",
			Help:    "Time to apply one raft command to the state, lock included.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}}),
		pauseSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "montage_fsm_snapshot_pause_seconds",
			Help:    "Time a snapshot held up Apply while it took its point-in-time view.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25}}),
		pauseMax: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_fsm_snapshot_pause_max_seconds",
			Help: "Longest time a snapshot held up Apply since this coordinator started."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "montage_fsm_snapshot_write_seconds",
			Help:    "Time to write a snapshot (beside Apply, from its view).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		writeMax: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_fsm_snapshot_write_max_seconds",
			Help: "Longest snapshot write since this coordinator started."}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_fsm_snapshot_bytes",
			Help: "Size of the last snapshot written."}),
		restoreSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_fsm_restore_seconds",
			Help: "Time the last snapshot restore took."}),
		wakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "montage_lease_poll_wakes_total",
			Help: "Waiting lease polls woken, by why: work it can take, its leases changed, or everyone (leader change, restore)."},
			[]string{"reason"}),
	}}
}

func (m *machine) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.m.applySeconds, m.m.pauseSeconds, m.m.pauseMax, m.m.writeSeconds, m.m.writeMax,
		m.m.snapshotBytes, m.m.restoreSeconds, m.m.wakes}
}

func (m *machine) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := fsm.Decode(l.Data)
	if err != nil {
		return fsm.Response{Err: err}
	}
	start := time.Now()
	m.mu.Lock()
	resp := m.state.Apply(l.Index, cmd)
	ch := m.state.Drain()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	m.m.applySeconds.Observe(time.Since(start).Seconds())
	m.wake(ch)
	return resp
}

// Snapshot takes a point-in-time view under the lock (the only part that
// holds up Apply); Persist writes it beside Apply.
func (m *machine) Snapshot() (raft.FSMSnapshot, error) {
	// The view's room is allocated first, outside the lock: Freeze then
	// allocates nothing while it holds the lock (an allocation there can be
	// made to assist the garbage collector for a long while).
	m.mu.RLock()
	sizes := m.state.Sizes()
	m.mu.RUnlock()
	view := fsm.NewFrozen(sizes)
	m.mu.Lock()
	start := time.Now() // from the lock on: the wait for it is any writer's
	view = m.state.FreezeInto(view)
	pause := time.Since(start)
	m.mu.Unlock()
	m.m.pauseSeconds.Observe(pause.Seconds())
	m.m.maxMu.Lock()
	if pause > m.m.maxPause {
		m.m.maxPause = pause
		m.m.pauseMax.Set(pause.Seconds())
	}
	m.m.maxMu.Unlock()
	return &snapshot{view: view, m: &m.m}, nil
}

func (m *machine) Restore(r io.ReadCloser) error {
	defer r.Close()
	start := time.Now()
	st, err := fsm.Restore(r)
	if err != nil {
		return err
	}
	m.m.restoreSeconds.Set(time.Since(start).Seconds())
	m.mu.Lock()
	m.state = st
	_ = st.Drain()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	m.wakeAll()
	return nil
}

// Wait registers a lease poll of agentID, which provides the given
// capabilities: the channel is closed when a task it could take becomes
// runnable, one of its leases ends, it is registered or its state changes,
// or leadership changes. Register before evaluating, so nothing between
// the evaluation and the wait is missed; cancel when done.
func (m *machine) Wait(agentID string, provides []string) (<-chan struct{}, func()) {
	w := &waiter{agentID: agentID, provides: provides, ch: make(chan struct{})}
	m.wmu.Lock()
	m.waiters[w] = struct{}{}
	m.wmu.Unlock()
	return w.ch, func() {
		m.wmu.Lock()
		delete(m.waiters, w)
		m.wmu.Unlock()
	}
}

func (m *machine) wake(c fsm.Changes) {
	if c.Any {
		m.wakeAll()
		return
	}
	if len(c.Runnable) == 0 && len(c.Agents) == 0 {
		return
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	for w := range m.waiters {
		reason := ""
		if slices.Contains(c.Agents, w.agentID) {
			reason = "agent"
		} else {
			for _, req := range c.Runnable {
				if provides(w.provides, req) {
					reason = "work"
					break
				}
			}
		}
		if reason != "" {
			close(w.ch)
			delete(m.waiters, w)
			m.m.wakes.WithLabelValues(reason).Inc()
		}
	}
}

func (m *machine) wakeAll() {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	for w := range m.waiters {
		close(w.ch)
		delete(m.waiters, w)
		m.m.wakes.WithLabelValues("all").Inc()
	}
}

func provides(have, need []string) bool {
	for _, r := range need {
		if !slices.Contains(have, r) {
			return false
		}
	}
	return true
}

type snapshot struct {
	view *fsm.Frozen
	m    *machineMetrics
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	n, err := s.view.WriteTo(sink)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	took := time.Since(start)
	s.m.writeSeconds.Observe(took.Seconds())
	s.m.snapshotBytes.Set(float64(n))
	s.m.maxMu.Lock()
	if took > s.m.maxWrite {
		s.m.maxWrite = took
		s.m.writeMax.Set(took.Seconds())
	}
	s.m.maxMu.Unlock()
	return nil
}

func (s *snapshot) Release() {}
