package api

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// agentStatuses keeps the last summary each agent sent this leader (in
// its lease polls and heartbeats), for metrics and ListAgents.
type agentStatuses struct {
	mu sync.Mutex
	m  map[string]*montagev1.AgentStatus
}

func (a *agentStatuses) set(agentID string, st *montagev1.AgentStatus) {
	if st == nil {
		return
	}
	a.mu.Lock()
	if a.m == nil {
		a.m = map[string]*montagev1.AgentStatus{}
	}
	a.m[agentID] = st
	a.mu.Unlock()
}

func (a *agentStatuses) get(agentID string) *montagev1.AgentStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[agentID]
}

func (a *agentStatuses) forget(agentID string) {
	a.mu.Lock()
	delete(a.m, agentID)
	a.mu.Unlock()
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descJobs        = desc("montage_jobs", "Jobs in the replicated state, by state.", "state")
	descTasks       = desc("montage_tasks", "Tasks in the replicated state (finished jobs' tasks go at compaction), by type and state.", "type", "state")
	descRunnable    = desc("montage_tasks_runnable", "Tasks queued with their dependencies done: the queue agents take work from.")
	descAgents      = desc("montage_agents", "Registered agents by state.", "state")
	descOnline      = desc("montage_agents_online", "Registered agents that called this leader recently.")
	descBlocklisted = desc("montage_agents_blocklisted", "Agents that at least one unfinished job no longer gives tasks to (after repeated failures).")
	descCacheN      = desc("montage_cache_entries", "Segments in the cache.")
	descCacheBytes  = desc("montage_cache_bytes", "Bytes of cached segments.")

	descAgentInfo    = desc("montage_agent_info", "Always 1, per agent: its state, OS, GPU and whether it serves metrics.", "agent", "state", "os", "gpu")
	descAgentContact = desc("montage_agent_last_contact_seconds", "Seconds since the agent last called this leader.", "agent")
	descAgentSlots   = desc("montage_agent_slots", "Task slots of the agent.", "agent")
	descAgentBusy    = desc("montage_agent_busy_slots", "Slots busy with tasks, as the agent last reported.", "agent")
	descAgentSpeed   = desc("montage_agent_speed_ratio", "Speed of the agent's last render as a multiple of realtime.", "agent")
	descAgentFPS     = desc("montage_agent_fps", "Frames per second of the agent's last render.", "agent")
	descAgentTasks   = desc("montage_agent_tasks_total", "Tasks the agent finished since it started, by outcome, as it reports them.", "agent", "outcome")
	descAgentDisk    = desc("montage_agent_disk_free_bytes", "Free bytes in the agent's data directory, as it reports them.", "agent")
	descAgentGPU     = desc("montage_agent_gpu_sessions_busy", "Hardware encoder sessions the agent is using.", "agent")
	descAgentEncoder = desc("montage_agent_encoder_info", "Always 1: the video encoder of the agent's last render.", "agent", "encoder")
	descAgentStreak  = desc("montage_agent_fail_streak", "Failed attempts in a row; at the farm's limit the agent is quarantined.", "agent")
	farmDescriptions = []*prometheus.Desc{descJobs, descTasks, descRunnable, descAgents, descOnline, descBlocklisted, descCacheN, descCacheBytes, descAgentInfo, descAgentContact, descAgentSlots, descAgentBusy, descAgentSpeed, descAgentFPS, descAgentTasks, descAgentDisk, descAgentGPU, descAgentEncoder, descAgentStreak}
	jobStates        = []montagev1.JobState{montagev1.JobState_JOB_STATE_QUEUED, montagev1.JobState_JOB_STATE_RUNNING, montagev1.JobState_JOB_STATE_SUCCEEDED, montagev1.JobState_JOB_STATE_FAILED, montagev1.JobState_JOB_STATE_CANCELED}
	agentStateEnums  = []montagev1.AgentState{montagev1.AgentState_AGENT_STATE_READY, montagev1.AgentState_AGENT_STATE_DRAINING, montagev1.AgentState_AGENT_STATE_DOWN, montagev1.AgentState_AGENT_STATE_QUARANTINED}
	taskStateEnums   = []montagev1.TaskState{montagev1.TaskState_TASK_STATE_QUEUED, montagev1.TaskState_TASK_STATE_LEASED, montagev1.TaskState_TASK_STATE_VERIFYING, montagev1.TaskState_TASK_STATE_SUCCEEDED, montagev1.TaskState_TASK_STATE_FAILED, montagev1.TaskState_TASK_STATE_CANCELED}
	taskTypeEnums    = []montagev1.TaskType{montagev1.TaskType_TASK_TYPE_RENDER, montagev1.TaskType_TASK_TYPE_CONCAT, montagev1.TaskType_TASK_TYPE_TRANSCRIBE}
)

// enumLabel is an enum value as a label: JOB_STATE_QUEUED → queued.
func enumLabel(v interface{ String() string }, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), prefix))
}

// farmCollector exports the farm's state from the leader only: a scrape
// reads counts the state machine keeps and walks the agents (as many as
// the farm has PCs) and the unfinished jobs, never the finished ones.
type farmCollector struct{ s *Server }

func (c farmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range farmDescriptions {
		ch <- d
	}
}

type agentRow struct {
	id, name, state, os, gpu string
	slots, streak            int
}

func (c farmCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if !s.node.IsLeader() {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	var (
		counts     fsm.Counts
		runnable   int
		agents     []agentRow
		byState    = map[montagev1.AgentState]int{}
		blocked    = map[string]bool{}
		cacheN     int
		cacheBytes int64
	)
	s.node.View(func(st *fsm.State) {
		counts = st.Counts()
		runnable = st.RunnableCount()
		cacheN, cacheBytes = st.CacheSize()
		names := map[string]int{}
		for _, a := range st.Agents {
			names[agentLabel(a)]++
		}
		for _, a := range st.Agents {
			byState[a.State]++
			caps := capsOf(a)
			name := agentLabel(a)
			if names[name] > 1 {
				name += "/" + a.ID // two PCs given one name must not collide
			}
			agents = append(agents, agentRow{id: a.ID, name: name, state: enumLabel(a.State, "AGENT_STATE_"),
				os: caps.GetOs(), gpu: caps.GetGpuName(), slots: a.Slots, streak: a.FailStreak})
		}
		for j := range st.LiveJobs() {
			for _, id := range j.Blocked {
				blocked[id] = true
			}
		}
	})
	for _, js := range jobStates {
		gauge(descJobs, float64(counts.Jobs[js]), enumLabel(js, "JOB_STATE_"))
	}
	for _, tt := range taskTypeEnums {
		for _, ts := range taskStateEnums {
			gauge(descTasks, float64(counts.Tasks[fsm.TaskClass{Type: tt, State: ts}]), enumLabel(tt, "TASK_TYPE_"), enumLabel(ts, "TASK_STATE_"))
		}
	}
	gauge(descRunnable, float64(runnable))
	for _, as := range agentStateEnums {
		gauge(descAgents, float64(byState[as]), enumLabel(as, "AGENT_STATE_"))
	}
	gauge(descBlocklisted, float64(len(blocked)))
	gauge(descCacheN, float64(cacheN))
	gauge(descCacheBytes, float64(cacheBytes))
	now := s.clock.Now()
	online := 0
	for _, a := range agents {
		gauge(descAgentInfo, 1, a.name, a.state, a.os, a.gpu)
		gauge(descAgentSlots, float64(a.slots), a.name)
		gauge(descAgentStreak, float64(a.streak), a.name)
		if t, ok := s.lead.LastSeen(a.id); ok {
			gauge(descAgentContact, max(0, now.Sub(t).Seconds()), a.name)
		}
		if s.lead.Online(a.id) {
			online++
		}
		st := s.statuses.get(a.id)
		if st == nil {
			continue
		}
		gauge(descAgentBusy, float64(st.GetBusySlots()), a.name)
		gauge(descAgentSpeed, st.GetSpeed(), a.name)
		gauge(descAgentFPS, st.GetFps(), a.name)
		gauge(descAgentDisk, float64(st.GetDiskFreeBytes()), a.name)
		gauge(descAgentGPU, float64(st.GetGpuSessionsBusy()), a.name)
		ch <- prometheus.MustNewConstMetric(descAgentTasks, prometheus.CounterValue, float64(st.GetTasksSucceeded()), a.name, "succeeded")
		ch <- prometheus.MustNewConstMetric(descAgentTasks, prometheus.CounterValue, float64(st.GetTasksFailed()), a.name, "failed")
		if e := st.GetEncoder(); e != "" {
			gauge(descAgentEncoder, 1, a.name, e)
		}
	}
	gauge(descOnline, float64(online))
}

// agentLabel names an agent in metrics: its name, which people chose and
// recognise (bounded by the farm's size), else its id.
func agentLabel(a *fsm.Agent) string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}
