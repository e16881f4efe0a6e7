package api

import "sync"

// maxKeptJobs bounds the jobs one agent may say it keeps: a spool holds a
// few montages, never thousands.
const maxKeptJobs = 1024

// keepers is which agents keep which jobs' committed segments, as they last
// said (leader only, in memory: after a failover concats simply go to
// whoever asks until the agents' next polls).
type keepers struct {
	mu sync.Mutex
	m  map[string]map[string]bool // agent → jobs
}

// set replaces what an agent keeps with the list from its poll.
func (k *keepers) set(agentID string, jobs []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(jobs) == 0 {
		delete(k.m, agentID)
		return
	}
	set := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		set[j] = true
	}
	if k.m == nil {
		k.m = map[string]map[string]bool{}
	}
	k.m[agentID] = set
}

// add records a segment committed by an agent that keeps it, before the
// agent's next poll says so.
func (k *keepers) add(agentID, jobID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]map[string]bool{}
	}
	if k.m[agentID] == nil {
		k.m[agentID] = map[string]bool{}
	}
	if len(k.m[agentID]) < maxKeptJobs {
		k.m[agentID][jobID] = true
	}
}

func (k *keepers) keeps(agentID, jobID string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[agentID][jobID]
}

func (k *keepers) forget(agentID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, agentID)
}
