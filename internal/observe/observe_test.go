package observe_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edutrack/edutrack/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadiness(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("disk on fire") }
	states := func(status string) func(context.Context) map[string]observe.ProjectionState {
		return func(context.Context) map[string]observe.ProjectionState {
			return map[string]observe.ProjectionState{
				"courses":  {Position: 9, Head: 9, Status: "running"},
				"learners": {Position: 4, Head: 9, Lag: 5, Status: status},
			}
		}
	}
	for _, tc := range []struct {
		name       string
		rd         observe.Readiness
		wantStatus int
		want       string
	}{
		{"is_ready_when_every_check_passes_and_no_projection_is_stalled",
			observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok}, Projections: states("catching up")},
			http.StatusOK,
			`{"status":"ready","checks":{"db":{"status":"ok"}},"projections":{"courses":{"position":9,"head":9,"lag":0,"status":"running"},"learners":{"position":4,"head":9,"lag":5,"status":"catching up"}}}`},
		{"is_not_ready_when_a_check_fails",
			observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok, "cache": down}},
			http.StatusServiceUnavailable,
			`{"status":"not ready","checks":{"cache":{"status":"failing","error":"disk on fire"},"db":{"status":"ok"}}}`},
		{"stays_ready_but_degraded_when_a_non_critical_check_fails",
			observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok},
				NonCritical: map[string]func(context.Context) error{"cache": down}},
			http.StatusOK,
			`{"status":"degraded","checks":{"cache":{"status":"degraded","error":"disk on fire"},"db":{"status":"ok"}}}`},
		{"is_ready_when_non_critical_checks_pass_too",
			observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok},
				NonCritical: map[string]func(context.Context) error{"cache": ok}},
			http.StatusOK,
			`{"status":"ready","checks":{"cache":{"status":"ok"},"db":{"status":"ok"}}}`},
		{"is_not_ready_when_a_critical_check_fails_whatever_the_non_critical_ones_say",
			observe.Readiness{Checks: map[string]func(context.Context) error{"db": down},
				NonCritical: map[string]func(context.Context) error{"cache": down}},
			http.StatusServiceUnavailable,
			`{"status":"not ready","checks":{"cache":{"status":"degraded","error":"disk on fire"},"db":{"status":"failing","error":"disk on fire"}}}`},
		{"is_not_ready_when_a_projection_is_stalled",
			observe.Readiness{Checks: map[string]func(context.Context) error{}, Projections: states("stalled")},
			http.StatusServiceUnavailable,
			`{"status":"not ready","checks":{},"projections":{"courses":{"position":9,"head":9,"lag":0,"status":"running"},"learners":{"position":4,"head":9,"lag":5,"status":"stalled"}}}`},
		{"is_not_ready_when_a_projection_is_ahead_of_the_log",
			observe.Readiness{Checks: map[string]func(context.Context) error{}, Projections: states("ahead of the log")},
			http.StatusServiceUnavailable,
			`{"status":"not ready","checks":{},"projections":{"courses":{"position":9,"head":9,"lag":0,"status":"running"},"learners":{"position":4,"head":9,"lag":5,"status":"ahead of the log"}}}`},
		{"reports_the_job_backlog_and_stays_ready_however_long_it_is",
			observe.Readiness{Checks: map[string]func(context.Context) error{"job_queue": ok},
				Jobs: func(context.Context) (observe.JobBacklog, error) {
					return observe.JobBacklog{Available: 12000, OldestAvailableSeconds: 3600.5}, nil
				}},
			http.StatusOK,
			`{"status":"ready","checks":{"job_queue":{"status":"ok"}},"jobs":{"available":12000,"oldestAvailableSeconds":3600.5}}`},
		{"leaves_the_job_backlog_out_when_the_queue_does_not_answer",
			observe.Readiness{Checks: map[string]func(context.Context) error{"job_queue": down},
				Jobs: func(context.Context) (observe.JobBacklog, error) {
					return observe.JobBacklog{}, errors.New("disk on fire")
				}},
			http.StatusServiceUnavailable,
			`{"status":"not ready","checks":{"job_queue":{"status":"failing","error":"disk on fire"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.rd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if got := string(bytes.TrimSpace(rec.Body.Bytes())); rec.Code != tc.wantStatus || got != tc.want {
				t.Errorf("/readyz: %d %s\nwant %d %s", rec.Code, got, tc.wantStatus, tc.want)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("/readyz: Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestReadinessMetricsReportWhatReadyzAnswers(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("down") }
	for _, tc := range []struct {
		name            string
		rd              observe.Readiness
		ready, degraded float64
	}{
		{"ready", observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok}}, 1, 0},
		{"degraded", observe.Readiness{Checks: map[string]func(context.Context) error{"db": ok},
			NonCritical: map[string]func(context.Context) error{"cache": down}}, 1, 1},
		{"not_ready", observe.Readiness{Checks: map[string]func(context.Context) error{"db": down}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(observe.ReadinessMetrics(func() observe.Readiness { return tc.rd }))
			if got := testutil.ToFloat64(gaugeOf(t, reg, "edutrack_ready")); got != tc.ready {
				t.Errorf("edutrack_ready = %v, want %v", got, tc.ready)
			}
			if got := testutil.ToFloat64(gaugeOf(t, reg, "edutrack_degraded")); got != tc.degraded {
				t.Errorf("edutrack_degraded = %v, want %v", got, tc.degraded)
			}
		})
	}
}

// gaugeOf is a collector of the one sample of name that reg gathers.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "copy"})
			g.Set(f.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no %s", name)
	return nil
}
