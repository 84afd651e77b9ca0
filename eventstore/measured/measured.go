// Package measured wraps an event store so that its appends are measured: their latency and
// their failures by reason. It lives apart from the port because the metrics library brings
// net/http, which the write core must not import.
package measured

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/eventstore"
)

// Store is an event store whose appends are measured: their latency (durable, as Append
// returns), and their failures by reason.
type Store struct {
	eventstore.Store
	seconds prometheus.Histogram
	errors  *prometheus.CounterVec
}

// The reasons an append fails, as the errors metric names them.
const (
	reasonConcurrency = "concurrency" // a wrong expected version: a lost race, retried by commands
	reasonDuplicate   = "duplicate"   // an event id used by another append
	reasonCanceled    = "canceled"    // the caller gave up
	reasonOther       = "other"       // the store failed
)

// New returns s with its appends measured in reg.
func New(s eventstore.Store, reg prometheus.Registerer) (*Store, error) {
	m := &Store{Store: s,
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "eventstore",
			Name: "append_duration_seconds", Help: "Time for an append to become durable, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "eventstore",
			Name: "append_errors_total", Help: "Appends that failed, by reason: concurrency (a lost race), duplicate, canceled or other."},
			[]string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.seconds, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every reason is a series from the start, so that an alert on its rate can fire at once.
	for _, r := range []string{reasonConcurrency, reasonDuplicate, reasonCanceled, reasonOther} {
		m.errors.WithLabelValues(r)
	}
	return m, nil
}

// Append appends through the measured store.
func (m *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	start := time.Now()
	res, err := m.Store.Append(ctx, stream, expected, events)
	m.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		reason := reasonOther
		switch {
		case errors.Is(err, eventstore.ErrConcurrency):
			reason = reasonConcurrency
		case errors.Is(err, eventstore.ErrDuplicateEvent):
			reason = reasonDuplicate
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			reason = reasonCanceled
		}
		m.errors.WithLabelValues(reason).Inc()
	}
	return res, err
}
