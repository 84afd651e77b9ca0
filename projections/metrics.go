package projections

import "github.com/prometheus/client_golang/prometheus"

type runnerMetrics struct {
	position, lag, stalled *prometheus.GaugeVec
	ahead                  *prometheus.GaugeVec
	applied, deadLetters   *prometheus.CounterVec
	skipped, cacheFences   *prometheus.CounterVec
	batchSeconds           *prometheus.HistogramVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	m := &runnerMetrics{
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "position", Help: "Log position up to which the projection has committed."}, []string{"projection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "lag_events", Help: "Log head minus the projection's position."}, []string{"projection"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "stalled", Help: "1 while the projection is stopped at an event it cannot apply."}, []string{"projection"}),
		ahead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "ahead_of_log", Help: "1 while the projection's read models hold events the log does not (it went back); rebuilt at start."}, []string{"projection"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "events_applied_total", Help: "Events the projection applied and committed."}, []string{"projection"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "dead_letters_total", Help: "Events the projection gave up on."}, []string{"projection"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "skipped_total", Help: "Events an operator told the projection to pass over."}, []string{"projection"}),
		cacheFences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "cache_fences_total", Help: "Batches whose cache writes failed, each raising the projection's cache fence to its position."}, []string{"projection"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "batch_write_seconds", Help: "Time to commit one batch to the read store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.position, m.lag, m.stalled, m.ahead, m.applied, m.deadLetters, m.skipped, m.cacheFences, m.batchSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
