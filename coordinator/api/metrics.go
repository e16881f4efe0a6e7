package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/sched"
	"github.com/stream-montages/montage/internal/version"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Buckets for task durations and queue waits: a second to four hours.
var taskBuckets = []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// metrics are the coordinator's own. Counters count what this node did
// while it led; gauges of the farm's state are exported by the leader
// only (see farmCollector), so sums over coordinators are right and a
// demoted node stops reporting them.
type metrics struct {
	reg        *prometheus.Registry
	submitted  prometheus.Counter
	finished   *prometheus.CounterVec
	granted    prometheus.Counter
	reports    *prometheus.CounterVec
	failures   *prometheus.CounterVec
	expired    prometheus.Counter
	leases     prometheus.Gauge
	queueWait  *prometheus.HistogramVec
	taskTime   *prometheus.HistogramVec
	realtime   prometheus.Histogram
	cache      *prometheus.CounterVec
	evicted    prometheus.Counter
	evictBytes prometheus.Counter
	verify     *prometheus.HistogramVec
	audio      prometheus.Counter
	storeTime  *prometheus.HistogramVec
	storeErrs  *prometheus.CounterVec
}

// Task types and outcomes are few and fixed: every series exists from the
// start at zero, so a dashboard's rate() has something to work on.
var (
	taskTypes    = []string{"render", "concat", "transcribe"}
	taskOutcomes = []string{"succeeded", "cached", "verifying", "failed", "expired", "handed_back", "rejected", "corrupt"}
	failCauses   = []string{"source", "render", "upload", "disk", "lease_expired", "verify", "other"}
	storeOps     = []string{"check", "verify", "stat", "list", "copy", "put", "delete", "start_multipart", "complete_multipart", "abort_multipart", "list_multipart"}
	verifyWays   = []string{"checksum", "read_back", "deferred_read_back"}
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_jobs_submitted_total", Help: "Jobs accepted by this coordinator while leader.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_jobs_finished_total", Help: "Jobs that ended while this coordinator led, by final state (succeeded, failed, canceled).",
		}, []string{"state"}),
		granted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_task_grants_total", Help: "Task leases granted by this coordinator while leader.",
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_task_reports_total",
			Help: "Ends of task attempts by task type and outcome: succeeded, cached, verifying (kept for a read-back), failed, expired (its agent went quiet), handed_back (returned without using an attempt), rejected (a stale lease), corrupt (the upload did not match).",
		}, []string{"type", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_task_failures_total", Help: "Failed task attempts by task type and cause.",
		}, []string{"type", "cause"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_lease_expirations_total", Help: "Leases expired because their agent stopped renewing them.",
		}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "montage_leases_active", Help: "Leases this leader is timing now (0 on followers).",
		}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "montage_task_queue_wait_seconds", Help: "Time a task waited runnable before it was granted, by task type.",
			Buckets: append([]float64{0.05, 0.1, 0.25, 0.5}, taskBuckets...),
		}, []string{"type"}),
		taskTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "montage_task_duration_seconds", Help: "Time from grant to the agent's report, by task type and outcome (succeeded or failed).",
			Buckets: taskBuckets,
		}, []string{"type", "outcome"}),
		realtime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "montage_render_realtime_ratio", Help: "Seconds of video a render made per second of its lease (above 1: faster than realtime).",
			Buckets: []float64{0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 40},
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_cache_lookups_total", Help: "Renders that finished from the segment cache (hit) or by rendering (miss).",
		}, []string{"result"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_cache_evictions_total", Help: "Cache entries evicted to stay within the cache budget.",
		}),
		evictBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_cache_evicted_bytes_total", Help: "Bytes of cached segments evicted.",
		}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "montage_upload_verify_seconds", Help: "Time to prove an uploaded result, by how: the store's checksum, a read-back in the agent's call, or a read-back after it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"method"}),
		audio: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_transcript_audio_seconds_total", Help: "Seconds of audio sent to transcription services: what transcripts cost.",
		}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "montage_store_request_duration_seconds", Help: "Requests this coordinator made to the object store, by operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_store_errors_total", Help: "Failed requests to the object store, by operation.",
		}, []string{"op"}),
	}
	for _, t := range taskTypes {
		for _, o := range taskOutcomes {
			m.reports.WithLabelValues(t, o)
		}
		for _, c := range failCauses {
			m.failures.WithLabelValues(t, c)
		}
		m.queueWait.WithLabelValues(t)
		m.taskTime.WithLabelValues(t, "succeeded")
		m.taskTime.WithLabelValues(t, "failed")
	}
	for _, st := range []string{"succeeded", "failed", "canceled"} {
		m.finished.WithLabelValues(st)
	}
	for _, r := range []string{"hit", "miss"} {
		m.cache.WithLabelValues(r)
	}
	for _, w := range verifyWays {
		m.verify.WithLabelValues(w)
	}
	for _, op := range storeOps {
		m.storeTime.WithLabelValues(op)
		m.storeErrs.WithLabelValues(op)
	}
	m.reg.MustRegister(m.submitted, m.finished, m.granted, m.reports, m.failures, m.expired, m.leases, m.queueWait, m.taskTime,
		m.realtime, m.audio, m.cache, m.evicted, m.evictBytes, m.verify, m.storeTime, m.storeErrs, version.BuildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// applied counts the jobs a command this leader proposed finished.
func (m *metrics) applied(r fsm.Response) {
	for _, st := range r.Ended {
		m.finished.WithLabelValues(enumLabel(st, "JOB_STATE_")).Inc()
	}
}

// observeStore is the object store's observer.
func (m *metrics) observeStore(op string, took time.Duration, err error) {
	m.storeTime.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.storeErrs.WithLabelValues(op).Inc()
	}
}

// typeLabel is a task type as metrics name it.
func typeLabel(t montagev1.TaskType) string {
	switch t {
	case montagev1.TaskType_TASK_TYPE_CONCAT:
		return "concat"
	case montagev1.TaskType_TASK_TYPE_TRANSCRIBE:
		return "transcribe"
	}
	return "render"
}

// failureCause sorts an agent's error message into a few causes, for a
// dashboard of why tasks fail (the message itself stays in the job).
func failureCause(msg string) string {
	m := strings.ToLower(msg)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(m, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("no space", "disk full", "free disk", "enospc"):
		return "disk"
	case has("upload", "presign", "put ", "multipart", "object store", "result refused", "checksum"):
		return "upload"
	case has("source", "download", "yt-dlp", "probe", "http ", "404", "403", "connection refused", "no such host"):
		return "source"
	case has("ffmpeg", "encode", "render", "concat", "exit status"):
		return "render"
	}
	return "other"
}

// taskFacts is what the metrics of an attempt's end need of its task, read
// before the report changes it.
type taskFacts struct {
	typ      string
	leasedAt time.Time
}

func (s *Server) taskFacts(taskID string) taskFacts {
	f := taskFacts{typ: "render"}
	s.node.View(func(st *fsm.State) {
		if t := st.Tasks[taskID]; t != nil {
			f.typ, f.leasedAt = typeLabel(t.Type), t.LeasedAt
		}
	})
	return f
}

// ended counts the end of an attempt: its outcome, how long it held its
// lease, for renders the cache and the realtime ratio (media: seconds of
// video made), and for failures their cause (msg: the agent's error).
func (s *Server) ended(f taskFacts, outcome string, media float64, msg string) {
	s.m.reports.WithLabelValues(f.typ, outcome).Inc()
	var took float64
	if !f.leasedAt.IsZero() {
		took = s.clock.Now().Sub(f.leasedAt).Seconds()
	}
	switch outcome {
	case "succeeded", "verifying":
		if took > 0 {
			s.m.taskTime.WithLabelValues(f.typ, "succeeded").Observe(took)
		}
		switch f.typ {
		case "render":
			s.m.cache.WithLabelValues("miss").Inc()
			if took > 0 && media > 0 {
				s.m.realtime.Observe(media / took)
			}
		case "transcribe":
			s.m.audio.Add(media) // what the transcription service was sent
		}
	case "cached":
		s.m.cache.WithLabelValues("hit").Inc()
	case "failed":
		if took > 0 {
			s.m.taskTime.WithLabelValues(f.typ, "failed").Observe(took)
		}
		s.m.failures.WithLabelValues(f.typ, failureCause(msg)).Inc()
	}
}

// readySince is a runnable task's type and since when it waits: since it
// was last requeued or its last dependency finished, whichever is later.
func (s *Server) readySince(taskID string) (typ string, since time.Time) {
	s.node.View(func(st *fsm.State) {
		if t := st.Tasks[taskID]; t != nil {
			typ, since = typeLabel(t.Type), sched.ReadySince(st, t)
		}
	})
	return typ, since
}
