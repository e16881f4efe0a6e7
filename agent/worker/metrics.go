package worker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stream-montages/montage/agent/disk"
	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/internal/version"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// stats is what the agent knows of its own work: exported on its /metrics
// and summarised in every lease poll and heartbeat, so that a PC
// Prometheus cannot reach (behind NAT, a laptop) is still seen through the
// coordinator.
type stats struct {
	reg        *prometheus.Registry
	tasks      *prometheus.CounterVec
	taskTime   *prometheus.HistogramVec
	speed      prometheus.Gauge
	fps        prometheus.Gauge
	encoder    *prometheus.GaugeVec
	storeBytes prometheus.Counter

	mu          sync.Mutex
	lastSpeed   float64
	lastFPS     float64
	lastEncoder string
	succeeded   uint64
	failed      uint64

	lastContact atomic.Int64 // unix nanoseconds of the last answered call
}

var agentOutcomes = []string{"succeeded", "cached", "failed", "handed_back", "revoked"}

func newStats(a *Agent) *stats {
	s := &stats{
		reg: prometheus.NewRegistry(),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "montage_agent_tasks_total",
			Help: "Tasks this agent ran, by type and outcome (succeeded, cached, failed, handed_back, revoked)."}, []string{"type", "outcome"}),
		taskTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "montage_agent_task_duration_seconds",
			Help: "Time this agent spent on a task, by type.", Buckets: taskBuckets}, []string{"type"}),
		speed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_agent_speed_ratio",
			Help: "Seconds of video the last render made per second (above 1: faster than realtime)."}),
		fps: prometheus.NewGauge(prometheus.GaugeOpts{Name: "montage_agent_fps",
			Help: "Frames per second the last render made."}),
		encoder: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "montage_agent_encoder_in_use",
			Help: "1 for the video encoder of the last render, 0 for the agent's other encoders."}, []string{"encoder"}),
		storeBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "montage_agent_store_written_bytes_total",
			Help: "Bytes this agent uploaded to the object store."}),
	}
	for _, t := range []string{"render", "concat"} {
		for _, o := range agentOutcomes {
			s.tasks.WithLabelValues(t, o)
		}
		s.taskTime.WithLabelValues(t)
	}
	proven := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "montage_agent_encoder_test_ok",
		Help: "Result of the test encode at start, per candidate encoder: 1 passed, 0 failed."}, []string{"encoder"})
	for _, enc := range media.Candidates() {
		ok := 0.0
		for _, e := range a.caps.Load().GetEncoders() {
			if e == enc {
				ok = 1
			}
		}
		proven.WithLabelValues(enc).Set(ok)
		if ok == 1 {
			s.encoder.WithLabelValues(enc)
		}
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	s.reg.MustRegister(s.tasks, s.taskTime, s.speed, s.fps, s.encoder, s.storeBytes, proven, version.BuildInfo(),
		gauge("montage_agent_slots", "Tasks this agent runs at once.", func() float64 { return float64(a.cfg.Slots) }),
		gauge("montage_agent_busy_slots", "Slots busy with tasks now.", func() float64 { return float64(a.busy()) }),
		gauge("montage_agent_gpu_sessions", "Hardware encodes this agent runs at once (0 without a proven hardware encoder).",
			func() float64 { return float64(a.caps.Load().GetGpuSessions()) }),
		gauge("montage_agent_gpu_sessions_busy", "Hardware encoder sessions in use now.", func() float64 { return float64(a.gpuBusy()) }),
		gauge("montage_agent_disk_free_bytes", "Free bytes in the agent's data directory, after the reserve kept for the PC's owner.", func() float64 {
			n, _ := disk.Available(a.cfg.DataDir)
			return float64(n)
		}),
		gauge("montage_agent_last_contact_seconds", "Seconds since a coordinator last answered this agent.", func() float64 {
			t := s.lastContact.Load()
			if t == 0 {
				return -1 // never
			}
			return time.Since(time.Unix(0, t)).Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "montage_agent_source_read_bytes_total",
			Help: "Bytes this agent read from highlight sources."}, func() float64 { return float64(a.proxy.BytesRead()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// Buckets for task durations: a second to four hours.
var taskBuckets = []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// ended counts a task's end.
func (s *stats) ended(typ montagev1.TaskType, outcome string, took time.Duration) {
	t := "render"
	if typ == montagev1.TaskType_TASK_TYPE_CONCAT {
		t = "concat"
	}
	s.tasks.WithLabelValues(t, outcome).Inc()
	s.taskTime.WithLabelValues(t).Observe(took.Seconds())
	s.mu.Lock()
	switch outcome {
	case "succeeded", "cached":
		s.succeeded++
	case "failed":
		s.failed++
	}
	s.mu.Unlock()
}

// rendered records a render's speed: media seconds made in took, at fps.
func (s *stats) rendered(encoder string, media float64, took time.Duration, fps float64) {
	if took <= 0 || media <= 0 {
		return
	}
	speed := media / took.Seconds()
	s.speed.Set(speed)
	s.fps.Set(speed * fps)
	s.mu.Lock()
	if s.lastEncoder != encoder {
		if s.lastEncoder != "" {
			s.encoder.WithLabelValues(s.lastEncoder).Set(0)
		}
		s.lastEncoder = encoder
	}
	s.lastSpeed, s.lastFPS = speed, speed*fps
	s.mu.Unlock()
	s.encoder.WithLabelValues(encoder).Set(1)
}

// pausedReason is why the agent takes no new work (empty: it does).
func (a *Agent) pausedReason() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paused
}

// reportPaused tells the coordinator, with a poll for no work, that the
// agent is paused and why (shown by montagectl agents).
func (a *Agent) reportPaused(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = a.client.LeaseTask(cctx, connect.NewRequest(&montagev1.LeaseTaskRequest{
		AgentId: a.id, FreeSlots: 0, Held: a.held(), HeldListed: true, FreeDiskBytes: a.freeDisk(), Status: a.status(), KeptJobs: a.spool.keptJobs(),
	}))
}

// contact records an answered call.
func (s *stats) contact() { s.lastContact.Store(time.Now().UnixNano()) }

// status is the summary sent with lease polls and heartbeats.
func (a *Agent) status() *montagev1.AgentStatus {
	s := a.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	free, _ := disk.Available(a.cfg.DataDir)
	return &montagev1.AgentStatus{
		Slots: int32(a.cfg.Slots), BusySlots: int32(a.busy()), Speed: s.lastSpeed, Fps: s.lastFPS, Encoder: s.lastEncoder,
		TasksSucceeded: s.succeeded, TasksFailed: s.failed, DiskFreeBytes: max(0, free), GpuSessionsBusy: int32(a.gpuBusy()),
		Paused: a.pausedReason(),
	}
}

// MetricsHandler serves the agent's Prometheus metrics.
func (a *Agent) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.stats.reg, promhttp.HandlerOpts{})
}

// metricsAddr is where the coordinators are told to scrape this agent.
func (a *Agent) metricsAddr() string {
	a.mu.Lock()
	addr := a.cfg.MetricsAddr
	a.mu.Unlock()
	return advertise(addr, a.eps.current().String())
}

// advertise completes a metrics address whose host is unspecified (":9102",
// "0.0.0.0:9102") with this PC's address on the route to the coordinator,
// which is the one Prometheus beside it can reach. No packet is sent: a
// UDP "connection" only picks the route.
func advertise(addr, coordinator string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || addr == "" {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	u, err := url.Parse(coordinator)
	if err != nil || u.Hostname() == "" {
		return addr
	}
	cport := u.Port()
	if cport == "" {
		cport = "443"
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), cport))
	if err != nil {
		return addr
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	return net.JoinHostPort(local.IP.String(), port)
}

// ServeMetrics serves /metrics on addr until ctx ends and, from the next
// registration on, tells the coordinators where: advertised when set, else
// the bound address (an unspecified host completed by advertise). Call it
// before Run.
func (a *Agent) ServeMetrics(ctx context.Context, addr, advertised string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if advertised == "" {
		advertised = ln.Addr().String()
	}
	a.mu.Lock()
	a.cfg.MetricsAddr = advertised
	a.mu.Unlock()
	a.log.Info("serving metrics", "listen", ln.Addr().String(), "advertised", advertised)
	return nil
}
