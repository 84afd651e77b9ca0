package eventstore_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
)

func TestFindAppend(t *testing.T) {
	ids := make([]uuid.UUID, 6)
	stored := make([]eventstore.RecordedEvent, len(ids))
	for i := range ids {
		ids[i] = uuid.New()
		stored[i] = eventstore.RecordedEvent{ID: ids[i], Version: uint64(i + 1), Position: uint64(1000 * (i + 1))}
	}
	data := func(ids ...uuid.UUID) []eventstore.EventData {
		out := make([]eventstore.EventData, len(ids))
		for i, id := range ids {
			out[i] = eventstore.EventData{ID: id}
		}
		return out
	}
	tests := []struct {
		name      string
		events    []eventstore.EventData
		found     bool
		version   uint64
		duplicate bool
	}{
		{"new_ids_are_not_found", data(uuid.New(), uuid.New()), false, 0, false},
		{"an_earlier_append_is_found_at_its_last_event", data(ids[1], ids[2], ids[3]), true, 4, false},
		{"a_single_event_is_found", data(ids[5]), true, 6, false},
		{"some_known_ids_are_a_duplicate", data(uuid.New(), ids[1]), false, 0, true},
		{"known_ids_in_another_order_are_a_duplicate", data(ids[2], ids[1]), false, 0, true},
		{"known_ids_with_a_gap_are_a_duplicate", data(ids[1], ids[3]), false, 0, true},
		{"a_run_that_goes_past_the_end_is_a_duplicate", data(ids[5], uuid.New()), false, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			last, found, err := eventstore.FindAppend(stored, tc.events)
			if found != tc.found || (found && last.Version != tc.version) {
				t.Errorf("FindAppend = version %d, found %v; want version %d, found %v", last.Version, found, tc.version, tc.found)
			}
			if got := errors.Is(err, eventstore.ErrDuplicateEvent); got != tc.duplicate {
				t.Errorf("FindAppend err = %v, want duplicate %v", err, tc.duplicate)
			}
		})
	}
}
