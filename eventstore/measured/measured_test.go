package measured_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/measured"
)

// failing is a Store whose appends fail with err; nothing else is called.
type failing struct {
	eventstore.Store
	err error
}

func (f failing) Append(context.Context, string, eventstore.ExpectedVersion, []eventstore.EventData) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{Version: 1, Position: 1}, f.err
}

func TestNewCountsAppendsAndTheirErrorsByReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := &failing{}
	m, err := measured.New(store, reg)
	if err != nil {
		t.Fatal(err)
	}
	const errorsMetric = "edutrack_eventstore_append_errors_total"
	// The reasons are series before anything fails, so that alerts on them can fire.
	if n := testutil.CollectAndCount(reg, errorsMetric); n != 4 {
		t.Errorf("%d error series before any append, want 4", n)
	}
	for _, err := range []error{nil, nil, fmt.Errorf("append: %w", eventstore.ErrConcurrency), eventstore.ErrDuplicateEvent,
		context.Canceled, errors.New("disk full"), errors.New("disk full")} {
		store.err = err
		if _, got := m.Append(context.Background(), "s", eventstore.Any, nil); !errors.Is(got, err) {
			t.Fatalf("Append returned %v, want %v", got, err)
		}
	}
	errs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"concurrency": 1, "duplicate": 1, "canceled": 1, "other": 2}
	var appends uint64
	for _, f := range errs {
		for _, metric := range f.GetMetric() {
			switch f.GetName() {
			case errorsMetric:
				reason := metric.GetLabel()[0].GetValue()
				if got := metric.GetCounter().GetValue(); got != want[reason] {
					t.Errorf("errors{reason=%q} = %v, want %v", reason, got, want[reason])
				}
			case "edutrack_eventstore_append_duration_seconds":
				appends = metric.GetHistogram().GetSampleCount()
			}
		}
	}
	if appends != 7 {
		t.Errorf("%d appends timed, want 7", appends)
	}
}
