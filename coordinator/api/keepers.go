package api

import "sync"

// maxKeptJobs bounds the jobs one agent may say it keeps: a spool holds a
// few montages, never thousands.
const maxKeptJobs = 1024

// keepers is which agents keep which jobs' committed segments, as they last
// said (leader only, in memory: after a failover concats simply go to
// whoever asks until the agents' next polls). It is indexed both ways: a
// poll replaces an agent's jobs, the scheduler asks for a job's agents.
type keepers struct {
	mu      sync.Mutex
	byAgent map[string]map[string]bool
	byJob   map[string]map[string]bool
}

// set replaces what an agent keeps with the list from its poll.
func (k *keepers) set(agentID string, jobs []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	listed := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		listed[j] = true
	}
	for j := range k.byAgent[agentID] {
		if !listed[j] {
			k.dropLocked(agentID, j)
		}
	}
	for j := range listed {
		k.addLocked(agentID, j)
	}
}

// add records a segment committed by an agent that keeps it, before the
// agent's next poll says so.
func (k *keepers) add(agentID, jobID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addLocked(agentID, jobID)
}

func (k *keepers) addLocked(agentID, jobID string) {
	if k.byAgent == nil {
		k.byAgent, k.byJob = map[string]map[string]bool{}, map[string]map[string]bool{}
	}
	if k.byAgent[agentID] == nil {
		k.byAgent[agentID] = map[string]bool{}
	}
	if k.byAgent[agentID][jobID] || len(k.byAgent[agentID]) >= maxKeptJobs {
		return
	}
	k.byAgent[agentID][jobID] = true
	if k.byJob[jobID] == nil {
		k.byJob[jobID] = map[string]bool{}
	}
	k.byJob[jobID][agentID] = true
}

func (k *keepers) dropLocked(agentID, jobID string) {
	delete(k.byAgent[agentID], jobID)
	if len(k.byAgent[agentID]) == 0 {
		delete(k.byAgent, agentID)
	}
	delete(k.byJob[jobID], agentID)
	if len(k.byJob[jobID]) == 0 {
		delete(k.byJob, jobID)
	}
}

// of lists the agents keeping segments of a job.
func (k *keepers) of(jobID string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for a := range k.byJob[jobID] {
		out = append(out, a)
	}
	return out
}

func (k *keepers) forget(agentID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for j := range k.byAgent[agentID] {
		k.dropLocked(agentID, j)
	}
}
