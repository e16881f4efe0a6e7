package gometrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Keys in the table become the named metrics, in seconds for timers;
// keys outside it (per-peer copies) are dropped.
func TestSinkTranslates(t *testing.T) {
	s := NewSink()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	s.IncrCounter([]string{"raft", "apply"}, 3)
	s.IncrCounter([]string{"raft", "state", "leader"}, 1)
	s.IncrCounter([]string{"raft", "state", "follower"}, 2)
	s.AddSample([]string{"raft", "commitTime"}, 250) // ms
	s.SetGauge([]string{"raft", "peers"}, 3)
	s.AddSample([]string{"raft", "replication", "heartbeat", "node-7"}, 5) // per-peer: dropped
	s.EmitKey([]string{"raft", "apply"}, 9)                                // not a counter increment

	want := `
# HELP montage_raft_applies_total Commands this leader appended to the raft log.
# TYPE montage_raft_applies_total counter
montage_raft_applies_total 3
# HELP montage_raft_peers Voters in the raft configuration, as the leader sees it.
# TYPE montage_raft_peers gauge
montage_raft_peers 3
# HELP montage_raft_state_changes_total Times this node entered each raft role.
# TYPE montage_raft_state_changes_total counter
montage_raft_state_changes_total{to="candidate"} 0
montage_raft_state_changes_total{to="follower"} 2
montage_raft_state_changes_total{to="leader"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "montage_raft_applies_total", "montage_raft_peers", "montage_raft_state_changes_total"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "montage_raft_commit_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 0.25 {
				t.Errorf("commit time: %d samples summing %v, want one of 0.25 s", h.GetSampleCount(), h.GetSampleSum())
			}
		}
		if strings.Contains(mf.GetName(), "node") || !strings.HasPrefix(mf.GetName(), "montage_") {
			t.Errorf("unexpected metric %s", mf.GetName())
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Every key maps to one metric name of one kind; names sharing a metric
// share its kind and label.
func TestTableIsConsistent(t *testing.T) {
	kinds := map[string]def{}
	keys := map[string]bool{}
	for _, d := range table {
		if keys[d.key] {
			t.Errorf("key %s listed twice", d.key)
		}
		keys[d.key] = true
		if prev, ok := kinds[d.name]; ok && (prev.kind != d.kind || prev.label != d.label) {
			t.Errorf("%s: %s and %s disagree", d.name, prev.key, d.key)
		}
		if _, ok := kinds[d.name]; !ok && d.help == "" {
			t.Errorf("%s: first definition without help", d.name)
		}
		kinds[d.name] = d
		switch {
		case d.kind == counter && !strings.HasSuffix(d.name, "_total"),
			d.kind == timer && !strings.HasSuffix(d.name, "_seconds"):
			t.Errorf("%s: name lacks its unit", d.name)
		}
	}
}
