package dashboards

// The queries read the coordinators' series summed or maxed over
// instances: farm gauges come from the leader only, and every coordinator
// counts only what it did while it led.

func farm() *board {
	d := newBoard("montage-farm", "Montage farm",
		"Whether montages flow: finished montages, the queue and its wait, render speed, failures by cause and the segment cache.", "farm")
	d.row("Montages")
	d.single("Montages finished (1h)", "Concat tasks that succeeded in the last hour: each is a finished montage.", "short", 6,
		query{ref: "A", expr: `sum(increase(montage_task_reports_total{type="concat",outcome=~"succeeded|verifying"}[1h]))`})
	d.single("Jobs waiting or running", "Jobs queued or running now.", "short", 6,
		query{ref: "A", expr: `sum(montage_jobs{state=~"queued|running"})`})
	d.single("Agents online", "Agents that called the leader recently.", "short", 6,
		query{ref: "A", expr: `sum(montage_agents_online)`})
	d.single("Cache hit ratio (1h)", "Renders finished from the segment cache, of all renders in the last hour.", "percentunit", 6,
		query{ref: "A", expr: `sum(increase(montage_cache_lookups_total{result="hit"}[1h])) / clamp_min(sum(increase(montage_cache_lookups_total[1h])), 1)`})
	d.graph("Montages finished per hour", "Concat tasks that succeeded, per hour.", "short", 12,
		query{ref: "A", expr: `sum(increase(montage_task_reports_total{type="concat",outcome=~"succeeded|verifying"}[1h]))`, legend: "montages"})
	d.graph("Jobs by state", "Jobs in the replicated state; finished ones stay until retention removes them.", "short", 12,
		query{ref: "A", expr: `sum by (state) (montage_jobs)`, legend: "{{state}}"})
	d.row("Queue")
	d.graph("Queue depth", "Tasks runnable and waiting for an agent, and tasks leased now.", "short", 12,
		query{ref: "A", expr: `sum(montage_tasks_runnable)`, legend: "runnable"},
		query{ref: "B", expr: `sum by (type) (montage_tasks{state="leased"})`, legend: "leased {{type}}"})
	d.graph("Queue wait", "How long tasks waited runnable before an agent took them (p50 and p95).", "s", 12,
		query{ref: "A", expr: `histogram_quantile(0.5, sum by (le, type) (rate(montage_task_queue_wait_seconds_bucket[$__rate_interval])))`, legend: "p50 {{type}}"},
		query{ref: "B", expr: `histogram_quantile(0.95, sum by (le, type) (rate(montage_task_queue_wait_seconds_bucket[$__rate_interval])))`, legend: "p95 {{type}}"})
	d.row("Renders")
	d.graph("Realtime factor", "Seconds of video made per second of render, over the farm (median) and per agent's last render.", "x", 12,
		query{ref: "A", expr: `histogram_quantile(0.5, sum by (le) (rate(montage_render_realtime_ratio_bucket[$__rate_interval])))`, legend: "farm median"},
		query{ref: "B", expr: `max by (agent) (montage_agent_speed_ratio)`, legend: "{{agent}}"})
	d.graph("Task duration", "Time from grant to report of successful tasks (p95) by type.", "s", 12,
		query{ref: "A", expr: `histogram_quantile(0.95, sum by (le, type) (rate(montage_task_duration_seconds_bucket{outcome="succeeded"}[$__rate_interval])))`, legend: "p95 {{type}}"})
	d.graph("Failures by cause", "Failed task attempts by cause: source, render (ffmpeg), upload, disk, lease_expired (the agent went quiet), other.", "short", 12,
		query{ref: "A", expr: `sum by (cause) (increase(montage_task_failures_total[$__rate_interval]))`, legend: "{{cause}}"})
	d.graph("Attempt outcomes", "How task attempts ended.", "short", 12,
		query{ref: "A", expr: `sum by (outcome) (increase(montage_task_reports_total[$__rate_interval]))`, legend: "{{outcome}}"})
	d.row("Cache")
	d.graph("Cache lookups", "Renders from the cache (hit) and rendered (miss).", "short", 12,
		query{ref: "A", expr: `sum by (result) (increase(montage_cache_lookups_total[$__rate_interval]))`, legend: "{{result}}"})
	d.graph("Cache size", "Bytes of cached segments, and bytes evicted to stay within the budget.", "bytes", 12,
		query{ref: "A", expr: `sum(montage_cache_bytes)`, legend: "cached"},
		query{ref: "B", expr: `sum(increase(montage_cache_evicted_bytes_total[$__rate_interval]))`, legend: "evicted"})
	return d
}

func agents() *board {
	d := newBoard("montage-agents", "Montage agents",
		"Which PC is working, how fast, and which is failing: per-agent slots, speed, errors, encoder, last contact and quarantine.", "agents")
	d.b.WithVariable(agentVar())
	d.row("Work")
	d.graph("Busy slots", "Task slots in use per agent.", "short", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_busy_slots{agent=~"$agent"})`, legend: "{{agent}}"})
	d.graph("Speed", "Speed of each agent's last render, as a multiple of realtime.", "x", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_speed_ratio{agent=~"$agent"})`, legend: "{{agent}}"})
	d.graph("Frames per second", "Frames per second of each agent's last render.", "short", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_fps{agent=~"$agent"})`, legend: "{{agent}}"})
	d.graph("Errors", "Failed tasks per agent, as each reports them to the coordinators.", "short", 12,
		query{ref: "A", expr: `sum by (agent) (increase(montage_agent_tasks_total{job="` + coordinatorJob + `",agent=~"$agent",outcome="failed"}[$__rate_interval]))`, legend: "{{agent}}"})
	d.row("Health")
	d.graph("Last contact", "Seconds since each agent last called the leader.", "s", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_last_contact_seconds{job="` + coordinatorJob + `",agent=~"$agent"})`, legend: "{{agent}}"})
	d.graph("Disk free", "Free bytes in each agent's data directory.", "bytes", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_disk_free_bytes{agent=~"$agent"})`, legend: "{{agent}}"})
	d.grid("Agents", "State (ready, draining, down, quarantined), OS and GPU of each agent.", 12,
		query{ref: "A", expr: `max by (agent, state, os, gpu) (montage_agent_info{agent=~"$agent"})`})
	d.grid("Encoder in use", "The video encoder of each agent's last render.", 12,
		query{ref: "A", expr: `max by (agent, encoder) (montage_agent_encoder_info{agent=~"$agent"})`})
	d.single("Quarantined", "Agents quarantined after failing too often in a row.", "short", 8,
		query{ref: "A", expr: `sum(montage_agents{state="quarantined"})`})
	d.single("Scraped agents up", "Agents with -metrics-listen that Prometheus reaches.", "short", 8,
		query{ref: "A", expr: `sum(up{job="` + agentJob + `"})`})
	d.single("Fail streak (max)", "Longest run of failed attempts of any agent; at the farm's limit it is quarantined.", "short", 8,
		query{ref: "A", expr: `max(montage_agent_fail_streak{agent=~"$agent"})`})
	d.row("Scraped agents")
	d.graph("Source bytes read", "Bytes per second agents read from highlight sources.", "Bps", 12,
		query{ref: "A", expr: `sum by (agent) (rate(montage_agent_source_read_bytes_total{agent=~"$agent"}[$__rate_interval]))`, legend: "{{agent}}"})
	d.graph("Store bytes written", "Bytes per second agents uploaded to the object store.", "Bps", 12,
		query{ref: "A", expr: `sum by (agent) (rate(montage_agent_store_written_bytes_total{agent=~"$agent"}[$__rate_interval]))`, legend: "{{agent}}"})
	d.graph("Hardware sessions", "Hardware encoder sessions in use, of those each agent allows.", "short", 12,
		query{ref: "A", expr: `max by (agent) (montage_agent_gpu_sessions_busy{agent=~"$agent"})`, legend: "busy {{agent}}"},
		query{ref: "B", expr: `max by (agent) (montage_agent_gpu_sessions{agent=~"$agent"})`, legend: "allowed {{agent}}"})
	d.grid("Test encodes", "Result of each agent's test encode at start, per encoder (1 passed).", 12,
		query{ref: "A", expr: `max by (agent, encoder) (montage_agent_encoder_test_ok{agent=~"$agent"})`})
	return d
}

func coordinators() *board {
	d := newBoard("montage-coordinators", "Montage coordinators",
		"The raft cluster: leader, term, commit and apply lag, apply latency, snapshots, gossip and the object store.", "coordinators")
	d.row("Raft")
	d.single("Leader", "Coordinators that lead now: anything but 1 means no leader or a split.", "short", 6,
		query{ref: "A", expr: `sum(montage_raft_state{state="leader"})`})
	d.single("Term", "The raft term; it grows with each election.", "short", 6,
		query{ref: "A", expr: `max(montage_raft_term)`})
	d.single("Leader changes (1h)", "Times a coordinator became leader in the last hour.", "short", 6,
		query{ref: "A", expr: `sum(increase(montage_raft_state_changes_total{to="leader"}[1h]))`})
	d.single("Coordinators alive", "Coordinators alive in gossip, as each sees it (max).", "short", 6,
		query{ref: "A", expr: `max(montage_gossip_members{state="alive"})`})
	d.graph("Role", "Each coordinator's raft role (1 = leader).", "short", 12,
		query{ref: "A", expr: `max by (instance) (montage_raft_state{state="leader"})`, legend: "{{instance}}"})
	d.graph("Commit and apply lag", "Entries committed but not applied yet, and entries in the log not committed, per coordinator.", "short", 12,
		query{ref: "A", expr: `max by (instance) (montage_raft_commit_index - montage_raft_applied_index)`, legend: "apply lag {{instance}}"},
		query{ref: "B", expr: `max by (instance) (montage_raft_last_index - montage_raft_commit_index)`, legend: "commit lag {{instance}}"})
	d.graph("Apply latency", "Time to apply a command to the state (p99), and from append to commit on the leader (p99).", "s", 12,
		query{ref: "A", expr: `histogram_quantile(0.99, sum by (le, instance) (rate(montage_fsm_apply_seconds_bucket[$__rate_interval])))`, legend: "apply {{instance}}"},
		query{ref: "B", expr: `histogram_quantile(0.99, sum by (le, instance) (rate(montage_raft_commit_seconds_bucket[$__rate_interval])))`, legend: "commit {{instance}}"})
	d.graph("Applies", "Commands the leader appended per second.", "ops", 12,
		query{ref: "A", expr: `sum(rate(montage_raft_applies_total[$__rate_interval]))`, legend: "applies"})
	d.row("Snapshots")
	d.graph("Snapshot size", "Size of the last snapshot each coordinator wrote.", "bytes", 8,
		query{ref: "A", expr: `max by (instance) (montage_fsm_snapshot_bytes)`, legend: "{{instance}}"})
	d.graph("Snapshot times", "Longest hold-up of Apply by a snapshot, and longest snapshot write.", "s", 8,
		query{ref: "A", expr: `max by (instance) (montage_fsm_snapshot_pause_max_seconds)`, legend: "pause {{instance}}"},
		query{ref: "B", expr: `max by (instance) (montage_fsm_snapshot_write_max_seconds)`, legend: "write {{instance}}"})
	d.graph("Snapshot persist", "Time to write snapshots to disk (p95).", "s", 8,
		query{ref: "A", expr: `histogram_quantile(0.95, sum by (le, instance) (rate(montage_raft_snapshot_persist_seconds_bucket[$__rate_interval])))`, legend: "{{instance}}"})
	d.row("Cluster")
	d.graph("Gossip members", "Coordinators each sees alive and failed.", "short", 12,
		query{ref: "A", expr: `max by (state) (montage_gossip_members)`, legend: "{{state}}"})
	d.graph("Leases", "Leases the leader times now.", "short", 12,
		query{ref: "A", expr: `sum(montage_leases_active)`, legend: "leases"})
	d.row("Object store")
	d.graph("Store errors", "Failed object store requests per second, by operation.", "ops", 12,
		query{ref: "A", expr: `sum by (op) (rate(montage_store_errors_total[$__rate_interval]))`, legend: "{{op}}"})
	d.graph("Store latency", "Object store request time (p95) by operation.", "s", 12,
		query{ref: "A", expr: `histogram_quantile(0.95, sum by (le, op) (rate(montage_store_request_duration_seconds_bucket[$__rate_interval])))`, legend: "{{op}}"})
	d.graph("Upload verification", "Time to prove an uploaded result (p95), by method.", "s", 12,
		query{ref: "A", expr: `histogram_quantile(0.95, sum by (le, method) (rate(montage_upload_verify_seconds_bucket[$__rate_interval])))`, legend: "{{method}}"})
	d.graph("Memory", "Resident memory of each coordinator.", "bytes", 12,
		query{ref: "A", expr: `max by (instance) (process_resident_memory_bytes{job="` + coordinatorJob + `"})`, legend: "{{instance}}"})
	d.grid("Builds", "Version of each coordinator and agent.", 24,
		query{ref: "A", expr: `max by (job, instance, version, revision, goversion) (montage_build_info)`})
	return d
}
