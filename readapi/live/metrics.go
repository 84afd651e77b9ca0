package live

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/projections/documents"
)

// metrics are what operators see of the streams.
type metrics struct {
	connections prometheus.Gauge
	sent        *prometheus.CounterVec
	resyncs     *prometheus.CounterVec
	dropped     prometheus.Counter
	refused     *prometheus.CounterVec
	delivery    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "connections", Help: "Live streams (GET /v1/live) open in this process."}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "messages_sent_total", Help: "Messages written to live streams, by event (a read model, catalog.removed, or resync)."},
			[]string{"event"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "resyncs_total", Help: "Streams told to read everything again, by reason: behind (the client fell behind its buffer), " +
				"feed (the change feed lost messages), unavailable (a changed document could not be read), catch-up (too much changed while it was away)."},
			[]string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "dropped_total", Help: "Messages not given to a stream because it had fallen behind (it gets a resync instead)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "refused_total", Help: "Streams refused with 429, by the cap they met: per_user or per_address."},
			[]string{"cap"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "live",
			Name: "delivery_seconds", Help: "Time from a projection's commit to a message's write to a client's socket.",
			Buckets: observe.LatencyBuckets}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.sent, m.resyncs, m.dropped, m.refused, m.delivery} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series from the start, at 0, so that a rate over them is defined before the first one.
	for _, e := range []string{documents.Dashboards, documents.CourseDetails, documents.Stats, documents.Rosters, documents.Catalog,
		EventCatalogRemoved, EventResync} {
		m.sent.WithLabelValues(e)
	}
	for _, r := range reasons[1:] {
		m.resyncs.WithLabelValues(r)
	}
	m.refused.WithLabelValues("per_user")
	m.refused.WithLabelValues("per_address")
	return m, nil
}
