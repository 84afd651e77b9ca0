package readhttp_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/readapi/readhttp"
)

// at is a Positions that has reached pos, and never gets further.
type at uint64

func (p at) Wait(ctx context.Context, pos uint64, _ ...string) error {
	if pos <= uint64(p) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestMinPositionWaitsAreMeasuredByOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	waits, err := readhttp.NewWaitMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := readhttp.Consistency{Positions: at(10), Wait: 5 * time.Millisecond, Waits: waits}
	for _, q := range []string{"?minPosition=3", "?minPosition=10", "?minPosition=11", ""} {
		c.WaitFor(httptest.NewRequest("GET", "/v1/courses"+q, nil), "courses")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if got["reached"] != 2 || got["timeout"] != 1 {
		t.Errorf("waits by outcome = %v, want 2 reached and 1 timeout (a read without minPosition does not wait)", got)
	}
}
