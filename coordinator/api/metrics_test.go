package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func TestFailureCause(t *testing.T) {
	for msg, want := range map[string]string{
		"source http://x/v.mp4: the server answered 404 Not Found":            "source",
		"yt-dlp: ERROR: video unavailable":                                    "source",
		"ffmpeg: exit status 1: Error while decoding stream":                  "render",
		"upload: HTTP 500: internal error":                                    "upload",
		"not enough free disk: agent a has 0.1 GB free":                       "disk",
		"write /data/out.mp4: no space left on device":                        "disk",
		"agent reported failure without a message":                            "other",
		"result refused: result.parts: the checksum of part 2 does not match": "upload",
	} {
		if got := failureCause(msg); got != want {
			t.Errorf("failureCause(%q) = %s, want %s", msg, got, want)
		}
	}
}

func (h *harness) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A job run through the API shows in the leader's metrics: jobs and tasks
// by state, attempt outcomes with their durations, the realtime ratio of
// renders, cache misses, the job's end, and each agent's own report of
// itself. The exposition passes client_golang's linter.
func TestMetricsFollowAJob(t *testing.T) {
	h := newHarness(t)
	status := &montagev1.AgentStatus{Slots: 2, BusySlots: 1, Speed: 3.5, Fps: 105, Encoder: "libx264", TasksSucceeded: 7, TasksFailed: 1, DiskFreeBytes: 5e9}
	if _, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: "a1", Name: "gaming-pc", Slots: 2,
		MetricsAddr: "10.0.0.5:9102", Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}, Os: "linux"}})); err != nil {
		t.Fatal(err)
	}
	j := h.submit(t, 1)
	r, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, Status: status}))
	if err != nil || len(r.Msg.GetLeases()) != 1 {
		t.Fatalf("lease: %v", err)
	}
	h.clk.Advance(2 * time.Second) // the render takes 2 s for 5 s of video
	if err := h.complete(t, "a1", r.Msg.GetLeases()[0]); err != nil {
		t.Fatal(err)
	}
	mid := h.scrape(t)
	for _, want := range []string{
		`montage_jobs{state="running"} 1`,
		`montage_tasks{state="succeeded",type="render"} 1`,
		`montage_tasks{state="queued",type="concat"} 1`,
		`montage_tasks_runnable 1`,
		`montage_task_reports_total{outcome="succeeded",type="render"} 1`,
		`montage_task_duration_seconds_sum{outcome="succeeded",type="render"} 2`,
		`montage_render_realtime_ratio_sum 2.5`,
		`montage_cache_lookups_total{result="miss"} 1`,
		`montage_agent_busy_slots{agent="gaming-pc"} 1`,
		`montage_agent_speed_ratio{agent="gaming-pc"} 3.5`,
		`montage_agent_tasks_total{agent="gaming-pc",outcome="failed"} 1`,
		`montage_agent_encoder_info{agent="gaming-pc",encoder="libx264"} 1`,
		`montage_agent_info{agent="gaming-pc",gpu="",os="linux",state="ready"} 1`,
		`montage_agent_last_contact_seconds{agent="gaming-pc"} 2`,
		`montage_agents{state="ready"} 1`,
		`montage_agents_online 1`,
		`montage_task_queue_wait_seconds_count{type="render"} 1`,
		`montage_build_info{goversion="go`,
		`montage_raft_state{state="leader"} 1`,
	} {
		if !strings.Contains(mid, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	l := h.lease(t, "a1", 1, 0)
	if len(l) != 1 {
		t.Fatal("no concat lease")
	}
	if err := h.complete(t, "a1", l[0]); err != nil {
		t.Fatal(err)
	}
	end := h.scrape(t)
	for _, want := range []string{
		`montage_jobs{state="succeeded"} 1`,
		`montage_jobs_finished_total{state="succeeded"} 1`,
		`montage_task_reports_total{outcome="succeeded",type="concat"} 1`,
	} {
		if !strings.Contains(end, want) {
			t.Errorf("after the job: metrics lack %s", want)
		}
	}
	if strings.Contains(end, j.GetId()) {
		t.Error("a job id appears in the metrics: labels must stay bounded")
	}
	problems, err := testutil.GatherAndLint(h.srv.m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// Agents' reports of themselves and their metrics addresses are checked
// with the field named.
func TestAgentStatusLimits(t *testing.T) {
	h := newHarness(t)
	for addr, field := range map[string]string{"no-port": "metrics_addr", "host:0": "metrics_addr", ":9102": "metrics_addr", "a b:80": "metrics_addr"} {
		_, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: "x", Slots: 1, MetricsAddr: addr}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("metrics_addr %q: %v", addr, err)
		}
	}
	h.register(t, "a1")
	for _, c := range []struct {
		st    *montagev1.AgentStatus
		field string
	}{
		{&montagev1.AgentStatus{Speed: -1}, "status.speed"},
		{&montagev1.AgentStatus{Fps: 1e9}, "status.fps"},
		{&montagev1.AgentStatus{Encoder: `lib"x`}, "status.encoder"},
		{&montagev1.AgentStatus{BusySlots: -2}, "status"},
	} {
		_, err := h.agents.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "a1", FreeSlots: 1, Status: c.st}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: %v, want InvalidArgument naming %s", c.st, err, c.field)
		}
	}
}

// /sd/agents lists agents that serve metrics while they call the leader,
// with labels that say which PC it is; one that went quiet leaves.
func TestServiceDiscoveryOfAgents(t *testing.T) {
	h := newHarness(t)
	for _, a := range []struct{ id, addr string }{{"a1", "10.0.0.5:9102"}, {"a2", "10.0.0.6:9102"}, {"quiet", ""}} {
		if _, err := h.agents.Register(context.Background(), connect.NewRequest(&montagev1.RegisterRequest{AgentId: a.id, Name: a.id + "-pc", Slots: 1, MetricsAddr: a.addr,
			Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264", "h264_nvenc"}, Os: "windows", GpuName: "RTX 3060"}})); err != nil {
			t.Fatal(err)
		}
	}
	sd := func() []targetGroup {
		resp, err := http.Get(h.url + "/sd/agents")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		var g []targetGroup
		if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := sd()
	if len(g) != 2 || g[0].Targets[0] != "10.0.0.5:9102" || g[1].Targets[0] != "10.0.0.6:9102" {
		t.Fatalf("targets: %+v", g)
	}
	if l := g[0].Labels; l["agent"] != "a1-pc" || l["os"] != "windows" || l["gpu"] != "RTX 3060" || l["encoders"] != "libx264,h264_nvenc" || l["state"] != "ready" {
		t.Errorf("labels: %v", l)
	}
	// a1 keeps calling; a2 goes quiet past the online window.
	h.advanceUntil(t, "a2 leaves the discovery", func() bool {
		_ = h.lease(t, "a1", 1, 0)
		g := sd()
		return len(g) == 1
	})
	if g := sd(); g[0].Labels["agent_id"] != "a1" {
		t.Errorf("left in the discovery: %+v", g)
	}
	resp, err := http.Get(h.url + "/sd/coordinators")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cg []targetGroup
	if err := json.NewDecoder(resp.Body).Decode(&cg); err != nil || len(cg) != 1 || cg[0].Labels["coordinator"] == "" || "http://"+cg[0].Targets[0] != h.url {
		t.Fatalf("coordinators: %+v %v", cg, err)
	}
}
