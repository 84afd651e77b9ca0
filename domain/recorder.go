package domain

import "slices"

// Recorder keeps the events an aggregate recorded and the store has not taken yet. Each aggregate
// embeds one, so the commands package reads and clears every aggregate's changes the same way.
type Recorder struct {
	changes []Event
}

// Changes returns the events recorded since the aggregate was built or last cleared, oldest first.
func (r *Recorder) Changes() []Event { return slices.Clone(r.changes) }

// ClearChanges forgets the pending events, once they are stored.
func (r *Recorder) ClearChanges() { r.changes = nil }

// Record applies e with apply, the aggregate's own Apply, then keeps it as a change: recording
// and replaying reach the same state because both go through apply. It is a function rather
// than a method so that it does not join the method set of every aggregate that embeds a
// Recorder, where it would be a second way to change state beside the command methods.
func Record(r *Recorder, apply func(Event), e Event) {
	apply(e)
	r.changes = append(r.changes, e)
}
