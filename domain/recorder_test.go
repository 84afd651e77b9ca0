package domain_test

import (
	"slices"
	"testing"

	"github.com/edutrack/edutrack/domain"
)

type noted struct{ N int }

func (noted) EventType() string { return "test.noted.v1" }

func TestRecorder(t *testing.T) {
	var r domain.Recorder
	var applied []domain.Event
	apply := func(e domain.Event) {
		if slices.Contains(r.Changes(), e) {
			t.Errorf("applying %v after keeping it; want it applied first", e)
		}
		applied = append(applied, e)
	}
	domain.Record(&r, apply, noted{1})
	domain.Record(&r, apply, noted{2})
	want := []domain.Event{noted{1}, noted{2}}
	if !slices.Equal(applied, want) || !slices.Equal(r.Changes(), want) {
		t.Fatalf("applied %v, changes %v; want both %v", applied, r.Changes(), want)
	}
	r.Changes()[0] = noted{9}
	if got := r.Changes(); !slices.Equal(got, want) {
		t.Errorf("changes = %v after changing the returned slice, want %v", got, want)
	}
	r.ClearChanges()
	domain.Record(&r, apply, noted{3})
	if got := r.Changes(); !slices.Equal(got, []domain.Event{noted{3}}) {
		t.Errorf("changes after ClearChanges and one record = %v, want [{3}]", got)
	}
}
