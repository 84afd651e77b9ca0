package eventstore

import "github.com/google/uuid"

// FindAppend looks for an earlier append of exactly events among stored, the events of their
// stream from some version on; it is how adapters make a retried append answer its first result. found is false when none
// of the ids are there; ErrDuplicateEvent when some are but not all, in order and together: the
// append is then neither new nor a retry.
func FindAppend(stored []RecordedEvent, events []EventData) (last RecordedEvent, found bool, err error) {
	at := make(map[uuid.UUID]int, len(stored))
	for i, e := range stored {
		if _, seen := at[e.ID]; !seen {
			at[e.ID] = i
		}
	}
	first, ok := at[events[0].ID]
	matches := 0
	for i, e := range events {
		if j, seen := at[e.ID]; seen {
			matches++
			if !ok || j != first+i {
				ok = false
			}
		}
	}
	switch {
	case matches == 0:
		return RecordedEvent{}, false, nil
	case !ok || matches != len(events):
		return RecordedEvent{}, false, ErrDuplicateEvent
	}
	return stored[first+len(events)-1], true, nil
}
