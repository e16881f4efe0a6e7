package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg       *prometheus.Registry
	submitted prometheus.Counter
	granted   prometheus.Counter
	completed *prometheus.CounterVec
	expired   prometheus.Counter
	leases    prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_jobs_submitted_total", Help: "Jobs accepted by this coordinator while leader.",
		}),
		granted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_task_grants_total", Help: "Task leases granted by this coordinator while leader.",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "montage_task_reports_total", Help: "Task completions and failures reported by agents, by outcome.",
		}, []string{"outcome"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "montage_lease_expirations_total", Help: "Leases expired because their agent stopped renewing them.",
		}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "montage_leases_active", Help: "Leases this leader is timing now.",
		}),
	}
	m.reg.MustRegister(m.submitted, m.granted, m.completed, m.expired, m.leases,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
