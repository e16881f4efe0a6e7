// Package gometrics bridges hashicorp's go-metrics, which raft and
// memberlist report through, to Prometheus: a table names each key worth
// watching as a Prometheus metric with a unit in its name. Keys not in the
// table (per-peer duplicates, internals) are dropped, so the exposition
// stays small and lint-clean.
package gometrics

import (
	"strings"
	"sync"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

type kind int

const (
	counter kind = iota
	gauge
	timer // go-metrics timers are milliseconds; exported as seconds
)

// def maps one go-metrics key to a Prometheus metric; label/value, when
// set, lets several keys share one metric.
type def struct {
	key, name, help string
	kind            kind
	label, value    string
}

// table is what is bridged. Timers become histograms in seconds.
var table = []def{
	{key: "raft.apply", name: "montage_raft_applies_total", help: "Commands this leader appended to the raft log.", kind: counter},
	{key: "raft.commitTime", name: "montage_raft_commit_seconds", help: "Time from appending a command on the leader to its commit.", kind: timer},
	{key: "raft.fsm.apply", name: "montage_raft_fsm_apply_seconds", help: "Time to apply one committed command to the state machine.", kind: timer},
	{key: "raft.fsm.enqueue", name: "montage_raft_fsm_enqueue_seconds", help: "Time committed commands waited to be handed to the state machine.", kind: timer},
	{key: "raft.leader.dispatchLog", name: "montage_raft_leader_dispatch_seconds", help: "Time the leader took to write a batch of commands to its own log.", kind: timer},
	{key: "raft.leader.lastContact", name: "montage_raft_leader_last_contact_seconds", help: "Time since the leader last heard from a follower, sampled by the leader.", kind: timer},
	{key: "raft.snapshot.create", name: "montage_raft_snapshot_create_seconds", help: "Time to take a snapshot (the state machine's view included).", kind: timer},
	{key: "raft.snapshot.persist", name: "montage_raft_snapshot_persist_seconds", help: "Time to write a snapshot to disk.", kind: timer},
	{key: "raft.snapshot.takeSnapshot", name: "montage_raft_snapshot_take_seconds", help: "Time of a whole snapshot, from start to its log compaction.", kind: timer},
	{key: "raft.fsm.restore", name: "montage_raft_fsm_restore_seconds", help: "Time to restore the state machine from a snapshot.", kind: timer},
	{key: "raft.compactLogs", name: "montage_raft_compact_logs_seconds", help: "Time to drop log entries a snapshot covers.", kind: timer},
	{key: "raft.rpc.appendEntries", name: "montage_raft_rpc_append_entries_seconds", help: "Time a follower took to handle an AppendEntries call.", kind: timer},
	{key: "raft.rpc.requestVote", name: "montage_raft_rpc_request_vote_seconds", help: "Time to handle a vote request.", kind: timer},
	{key: "raft.rpc.installSnapshot", name: "montage_raft_rpc_install_snapshot_seconds", help: "Time a follower took to install a snapshot from the leader.", kind: timer},
	{key: "raft.replication.appendEntries.rpc", name: "montage_raft_replication_append_entries_seconds", help: "Time the leader waited for followers' AppendEntries answers.", kind: timer},
	{key: "raft.replication.heartbeat", name: "montage_raft_replication_heartbeat_seconds", help: "Time of the leader's heartbeats to followers.", kind: timer},
	{key: "raft.state.leader", name: "montage_raft_state_changes_total", help: "Times this node entered each raft role.", kind: counter, label: "to", value: "leader"},
	{key: "raft.state.follower", name: "montage_raft_state_changes_total", kind: counter, label: "to", value: "follower"},
	{key: "raft.state.candidate", name: "montage_raft_state_changes_total", kind: counter, label: "to", value: "candidate"},
	{key: "raft.transition.heartbeat_timeout", name: "montage_raft_heartbeat_timeouts_total", help: "Times a follower heard no leader in time and started an election.", kind: counter},
	{key: "raft.transition.leader_lease_timeout", name: "montage_raft_leader_lease_timeouts_total", help: "Times a leader stepped down for losing contact with a quorum.", kind: counter},
	{key: "raft.barrier", name: "montage_raft_barriers_total", help: "Barriers issued (one per takeover and per read that must be current).", kind: counter},
	{key: "raft.restore", name: "montage_raft_restores_total", help: "Snapshots restored into the state machine.", kind: counter},
	{key: "raft.peers", name: "montage_raft_peers", help: "Voters in the raft configuration, as the leader sees it.", kind: gauge},
	{key: "memberlist.health.score", name: "montage_gossip_health_score", help: "Gossip awareness score: 0 is healthy, higher means this node is slow to answer probes.", kind: gauge},
	{key: "memberlist.msg.suspect", name: "montage_gossip_messages_total", help: "Gossip membership messages received, by kind.", kind: counter, label: "kind", value: "suspect"},
	{key: "memberlist.msg.dead", name: "montage_gossip_messages_total", kind: counter, label: "kind", value: "dead"},
	{key: "memberlist.msg.alive", name: "montage_gossip_messages_total", kind: counter, label: "kind", value: "alive"},
	{key: "memberlist.probeNode", name: "montage_gossip_probe_seconds", help: "Time of a gossip probe of another coordinator.", kind: timer},
}

// Buckets for timers: 0.1 ms to 6.5 s.
var timerBuckets = prometheus.ExponentialBuckets(0.0001, 4, 9)

// Sink receives go-metrics and exposes them as a Prometheus collector.
type Sink struct {
	keys       map[string]func(float32)
	collectors []prometheus.Collector
}

// NewSink builds a sink for the table.
func NewSink() *Sink {
	s := &Sink{keys: map[string]func(float32){}}
	help := map[string]string{}
	for _, d := range table {
		if d.help != "" {
			help[d.name] = d.help
		}
	}
	counters := map[string]*prometheus.CounterVec{}
	for _, d := range table {
		var labels []string
		if d.label != "" {
			labels = []string{d.label}
		}
		var values []string
		if d.value != "" {
			values = []string{d.value}
		}
		switch d.kind {
		case counter:
			v := counters[d.name]
			if v == nil {
				v = prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.name, Help: help[d.name]}, labels)
				counters[d.name] = v
				s.collectors = append(s.collectors, v)
			}
			c := v.WithLabelValues(values...)
			s.keys[d.key] = func(x float32) { c.Add(float64(x)) }
		case gauge:
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: d.name, Help: help[d.name]})
			s.collectors = append(s.collectors, g)
			s.keys[d.key] = func(x float32) { g.Set(float64(x)) }
		case timer:
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: d.name, Help: help[d.name], Buckets: timerBuckets})
			s.collectors = append(s.collectors, h)
			s.keys[d.key] = func(ms float32) { h.Observe(float64(ms) / 1000) }
		}
	}
	return s
}

func (s *Sink) record(key []string, val float32) {
	if f := s.keys[strings.Join(key, ".")]; f != nil {
		f(val)
	}
}

// SetGauge and the rest implement go-metrics' MetricSink. Labels are
// dropped: raft's are peer ids, and the table's names carry the meaning.
func (s *Sink) SetGauge(key []string, val float32) { s.record(key, val) }

func (s *Sink) SetGaugeWithLabels(key []string, val float32, _ []metrics.Label) {
	s.record(key, val)
}

func (s *Sink) EmitKey([]string, float32) {}

func (s *Sink) IncrCounter(key []string, val float32) { s.record(key, val) }

func (s *Sink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	s.record(key, val)
}

func (s *Sink) AddSample(key []string, val float32) { s.record(key, val) }

func (s *Sink) AddSampleWithLabels(key []string, val float32, _ []metrics.Label) {
	s.record(key, val)
}

// Describe and Collect make the sink a Prometheus collector.
func (s *Sink) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.collectors {
		c.Describe(ch)
	}
}

func (s *Sink) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.collectors {
		c.Collect(ch)
	}
}

var (
	globalOnce sync.Once
	global     *Sink
)

// Global installs one sink as go-metrics' global (raft and memberlist
// report to the global; a process runs one coordinator) and returns it.
func Global() *Sink {
	globalOnce.Do(func() {
		global = NewSink()
		cfg := metrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false // the Go collector reports those
		cfg.EnableServiceLabel = false
		_, _ = metrics.NewGlobal(cfg, global) // fails only on a bad config
	})
	return global
}
