// Package metered counts and times the read store's round trips by read model and operation,
// so that the batching of reads (one GetMany for a page's documents), and its absence, show in
// production. It wraps the reads of the read store; the read API reads through it.
package metered

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Reader is what the read side reads of the read store.
type Reader interface {
	Get(ctx context.Context, coll, id string) (readstore.Doc, error)
	GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error)
	Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error)
}

// Reads is a Reader whose round trips are counted and timed.
type Reads struct {
	r       Reader
	trips   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// New returns r with its round trips measured in reg.
func New(r Reader, reg prometheus.Registerer) (*Reads, error) {
	if r == nil || reg == nil {
		return nil, errors.New("metered: every dependency is required")
	}
	m := &Reads{r: r,
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "readstore",
			Name: "round_trips_total", Help: "Reads of the read store, by read model (collection) and operation (get, get_many, find): " +
				"a page's documents read one by one show as many gets."}, []string{"read_model", "operation"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "readstore",
			Name: "round_trip_duration_seconds", Help: "Time of a read of the read store, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{m.trips, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Reads) observe(coll, op string, start time.Time) {
	m.trips.WithLabelValues(coll, op).Inc()
	m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Get reads one document in one round trip.
func (m *Reads) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	defer m.observe(coll, "get", time.Now())
	return m.r.Get(ctx, coll, id)
}

// GetMany reads documents by id in one round trip.
func (m *Reads) GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error) {
	defer m.observe(coll, "get_many", time.Now())
	return m.r.GetMany(ctx, coll, ids)
}

// Find runs a query in one round trip.
func (m *Reads) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	defer m.observe(q.Coll, "find", time.Now())
	return m.r.Find(ctx, q)
}
