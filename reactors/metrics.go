package reactors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Backlog is how far the workers are behind.
type Backlog struct {
	// Available is how many jobs are due and wait for a worker.
	Available int
	// OldestAvailableSeconds is how long the job due longest has waited; 0 when none waits.
	OldestAvailableSeconds float64
}

// Backlog reads the queue's backlog.
func (q *Queue) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	if err := q.store.queryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'available'`).Scan(&b.Available); err != nil {
		return b, fmt.Errorf("count the available jobs: %w", err)
	}
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateAvailable).
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(1))
	if err != nil {
		return b, fmt.Errorf("find the oldest available job: %w", err)
	}
	if len(res.Jobs) > 0 {
		b.OldestAvailableSeconds = max(0, time.Since(res.Jobs[0].ScheduledAt).Seconds())
	}
	return b, nil
}

// queueMetrics are the queue's metrics. The gauges are read from the database at each scrape,
// so every process that opens the queue reports the same numbers; the latency and the
// failures are of the jobs this process worked.
type queueMetrics struct {
	q        *Queue
	log      *slog.Logger
	jobs     *prometheus.Desc
	oldest   *prometheus.Desc
	latency  *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

func newQueueMetrics(q *Queue, reg prometheus.Registerer, log *slog.Logger) (*queueMetrics, error) {
	m := &queueMetrics{q: q, log: log,
		jobs: prometheus.NewDesc("edutrack_jobs", "Jobs in the queue by kind and state, as the database has them (every process reports the same).",
			[]string{"kind", "state"}, nil),
		oldest: prometheus.NewDesc("edutrack_job_oldest_available_seconds",
			"How long the job due longest has waited for a worker; 0 when none waits (every process reports the same).", nil, nil),
		// From a few milliseconds for an email sent at once to the hours of its retries.
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "job", Name: "latency_seconds",
			Help:    "Time from a job's insert to its completion, of the jobs this process completed, retries included.",
			Buckets: prometheus.ExponentialBucketsRange(0.005, 6*3600, 16)}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "job", Name: "failures_total",
			Help: "Failed attempts of the jobs this process worked, by kind and outcome: retry (another attempt follows) or discarded (none does)."},
			[]string{"kind", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m, m.latency, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *queueMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.jobs
	ch <- m.oldest
}

func (m *queueMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A queue that does not answer leaves its gauges out of this scrape, rather than fail the
	// whole scrape (and with it every other metric); its readiness check reports it.
	counts, err := m.q.counts(ctx)
	if err != nil {
		m.log.Warn("count the jobs for /metrics", "err", err)
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.jobs, prometheus.GaugeValue, float64(n), k.kind, k.state)
	}
	b, err := m.q.Backlog(ctx)
	if err != nil {
		m.log.Warn("read the job backlog for /metrics", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, b.OldestAvailableSeconds)
}

type kindState struct{ kind, state string }

// counts counts the jobs by kind and state.
func (q *Queue) counts(ctx context.Context) (map[kindState]int, error) {
	out := map[kindState]int{}
	err := q.store.query(ctx, `SELECT kind, state, count(*) FROM river_job GROUP BY kind, state`, func(scan func(dest ...any) error) error {
		var k kindState
		var n int
		if err := scan(&k.kind, &k.state, &n); err != nil {
			return err
		}
		out[k] = n
		return nil
	})
	return out, err
}

// observe records the jobs this process finishes until stop is closed, then returns.
func (m *queueMetrics) observe(events <-chan *river.Event, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			switch e.Kind {
			case river.EventKindJobCompleted:
				done := time.Now()
				if e.Job.FinalizedAt != nil {
					done = *e.Job.FinalizedAt
				}
				m.latency.WithLabelValues(e.Job.Kind).Observe(max(0, done.Sub(e.Job.CreatedAt).Seconds()))
			case river.EventKindJobFailed:
				outcome := "retry"
				if e.Job.State == rivertype.JobStateDiscarded {
					outcome = "discarded"
				}
				m.failures.WithLabelValues(e.Job.Kind, outcome).Inc()
			}
		}
	}
}
