// Package observe is what operators see of every EduTrack process: request metrics by route,
// and readiness with each dependency and each projection's progress.
package observe

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets are the buckets of every latency histogram: 100 µs to 15 s, so that the
// slowest answers a client can get (a minPosition wait of 3 s, a request timeout of 10 s) fall
// in a bucket of their own rather than in +Inf.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14)

// Instrument returns middleware that records each request's duration by method, route pattern
// and status, and the requests in flight.
func Instrument(reg prometheus.Registerer) (func(http.Handler) http.Handler, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "http",
		Name: "request_duration_seconds", Help: "Time to answer a request.",
		Buckets: LatencyBuckets}, []string{"method", "route", "status"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "http",
		Name: "requests_in_flight", Help: "Requests being answered."})
	for _, c := range []prometheus.Collector{duration, inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			inFlight.Inc()
			defer inFlight.Dec()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			duration.WithLabelValues(methodLabel(r.Method), route, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		})
	}, nil
}

// methodLabel bounds the method label: a client may send any token as its method, and each new
// label value would be a new series, kept for the life of the process.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// ProjectionState is how far one projection has come.
type ProjectionState struct {
	Position uint64 `json:"position"`
	Head     uint64 `json:"head"`
	Lag      uint64 `json:"lag"`
	Status   string `json:"status"`
}

// Readiness answers /readyz from dependency checks and projection states.
type Readiness struct {
	// Checks are the dependencies the process cannot serve without, by name; a nil error means
	// healthy. One failing makes the process not ready (503).
	Checks map[string]func(ctx context.Context) error
	// NonCritical are the dependencies it serves without, only slower (the Redis cache), by
	// name, distinct from those of Checks. One failing is reported "degraded", and so is the
	// process, which stays ready (200): every instance shares such a dependency, and a load
	// balancer that took them out for it would take them all out at once.
	NonCritical map[string]func(ctx context.Context) error
	// Projections reports each projection run or followed by this process, if any.
	Projections func(ctx context.Context) map[string]ProjectionState
	// Jobs reports the job queue's backlog, in a process that opens the queue. A backlog never
	// makes the process unready: another instance would not work it faster.
	Jobs func(ctx context.Context) (JobBacklog, error)
}

// JobBacklog is how far the job workers are behind.
type JobBacklog struct {
	// Available is how many jobs are due and wait for a worker.
	Available int `json:"available"`
	// OldestAvailableSeconds is how long the job due longest has waited; 0 when none waits.
	OldestAvailableSeconds float64 `json:"oldestAvailableSeconds"`
}

type checkResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Statuses that /readyz reports, of the process and of each check.
const (
	StatusReady    = "ready"     // the process
	StatusNotReady = "not ready" // the process: a check failed or a projection is stalled (503)
	StatusDegraded = "degraded"  // the process, and a failing non-critical check (200)
	StatusOK       = "ok"        // a check
	StatusFailing  = "failing"   // a check
)

// Report is what /readyz answers.
type Report struct {
	Status      string                     `json:"status"`
	Checks      map[string]checkResult     `json:"checks"`
	Projections map[string]ProjectionState `json:"projections,omitempty"`
	Jobs        *JobBacklog                `json:"jobs,omitempty"`
}

// Evaluate runs the checks and reads the projections' states.
func (rd Readiness) Evaluate(ctx context.Context) Report {
	out := Report{Status: StatusReady, Checks: map[string]checkResult{}}
	ok, degraded := true, false
	for name, check := range rd.Checks {
		if err := check(ctx); err != nil {
			ok = false
			out.Checks[name] = checkResult{Status: StatusFailing, Error: err.Error()}
		} else {
			out.Checks[name] = checkResult{Status: StatusOK}
		}
	}
	for name, check := range rd.NonCritical {
		if err := check(ctx); err != nil {
			degraded = true
			out.Checks[name] = checkResult{Status: StatusDegraded, Error: err.Error()}
		} else {
			out.Checks[name] = checkResult{Status: StatusOK}
		}
	}
	if rd.Projections != nil {
		out.Projections = rd.Projections(ctx)
		for _, p := range out.Projections {
			// A stalled projection falls behind for good; one ahead of the log serves events
			// the log no longer has.
			if p.Status == "stalled" || p.Status == "ahead of the log" {
				ok = false
			}
		}
	}
	if rd.Jobs != nil {
		// A queue that does not answer fails its own check, in Checks.
		if b, err := rd.Jobs(ctx); err == nil {
			out.Jobs = &b
		}
	}
	switch {
	case !ok:
		out.Status = StatusNotReady
	case degraded:
		out.Status = StatusDegraded
	}
	return out
}

// ServeHTTP implements http.Handler. It answers 503 when a dependency of Checks fails or a
// projection is stalled, and 200 otherwise, with status "degraded" when one of NonCritical fails.
func (rd Readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := rd.Evaluate(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if out.Status == StatusNotReady {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(out)
}

// readinessCollector exports what /readyz would answer at each scrape, so that an alert can
// fire on it without a probe of its own.
type readinessCollector struct {
	get             func() Readiness
	ready, degraded *prometheus.Desc
}

// ReadinessMetrics returns a collector of edutrack_ready (1 when /readyz would answer 200) and
// edutrack_degraded (1 when a non-critical dependency fails), from the Readiness get returns
// at each scrape.
func ReadinessMetrics(get func() Readiness) prometheus.Collector {
	return readinessCollector{get: get,
		ready:    prometheus.NewDesc("edutrack_ready", "1 when /readyz answers 200 (ready or degraded), 0 when 503.", nil, nil),
		degraded: prometheus.NewDesc("edutrack_degraded", "1 when a dependency the process serves without fails: the Redis cache, or the log's check (history is withheld).", nil, nil)}
}

func (c readinessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.ready; ch <- c.degraded }

func (c readinessCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := c.get().Evaluate(ctx).Status
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, map[bool]float64{true: 1, false: 0}[st != StatusNotReady])
	ch <- prometheus.MustNewConstMetric(c.degraded, prometheus.GaugeValue, map[bool]float64{true: 1, false: 0}[st == StatusDegraded])
}
