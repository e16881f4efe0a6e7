package cluster

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descRaftState = prometheus.NewDesc("montage_raft_state",
		"This node's raft role: 1 for the role it has, 0 for the others.", []string{"state"}, nil)
	descRaftTerm = prometheus.NewDesc("montage_raft_term",
		"The raft term this node is in.", nil, nil)
	descRaftLast = prometheus.NewDesc("montage_raft_last_index",
		"Index of the last entry in this node's raft log.", nil, nil)
	descRaftCommit = prometheus.NewDesc("montage_raft_commit_index",
		"Index of the last raft entry this node knows to be committed.", nil, nil)
	descRaftApplied = prometheus.NewDesc("montage_raft_applied_index",
		"Index of the last raft entry applied to this node's state.", nil, nil)
	descGossip = prometheus.NewDesc("montage_gossip_members",
		"Coordinators this node knows through gossip, by state (alive, failed: left or unreachable).", []string{"state"}, nil)
)

// nodeCollector reads raft's own numbers and the gossip view at scrape
// time: a handful of values, whatever the size of the state.
type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descRaftLast, descRaftCommit, descRaftApplied, descGossip} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.n.raft
	st := r.State()
	for _, s := range []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate} {
		v := 0.0
		if s == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, v, roleName(s))
	}
	ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, float64(r.CurrentTerm()))
	ch <- prometheus.MustNewConstMetric(descRaftLast, prometheus.GaugeValue, float64(r.LastIndex()))
	ch <- prometheus.MustNewConstMetric(descRaftCommit, prometheus.GaugeValue, float64(r.CommitIndex()))
	ch <- prometheus.MustNewConstMetric(descRaftApplied, prometheus.GaugeValue, float64(r.AppliedIndex()))
	members, _ := c.n.Members()
	alive, failed := 0, 0
	for _, m := range members {
		if m.Alive {
			alive++
		} else {
			failed++
		}
	}
	ch <- prometheus.MustNewConstMetric(descGossip, prometheus.GaugeValue, float64(alive), "alive")
	ch <- prometheus.MustNewConstMetric(descGossip, prometheus.GaugeValue, float64(failed), "failed")
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	}
	return "follower"
}
