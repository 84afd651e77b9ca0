package learner

import "slices"

// State is everything a Learner's replay builds, as plain data: a snapshot of the stream at one
// version, so a long history need not be replayed from its first event. Restore(id, l.State())
// is the same learner as l.
type State struct {
	// Enrollments are by EnrolledAt and then CourseID, as Enrollments returns them.
	Enrollments []Enrollment `json:"enrollments"`
}

// State returns a copy of what the learner's events built.
func (l *Learner) State() State { return State{Enrollments: l.Enrollments()} }

// Restore returns the learner id as s describes it, ready for the events that follow s.
func Restore(id string, s State) *Learner {
	l := New(id)
	for _, e := range s.Enrollments {
		if l.enrollments == nil {
			l.enrollments = make(map[string]*enrollment, len(s.Enrollments))
		}
		en := &enrollment{Enrollment: e, completed: make(map[string]struct{}, len(e.CompletedModules))}
		en.CompletedModules = slices.Clone(e.CompletedModules)
		for _, m := range en.CompletedModules {
			en.completed[m] = struct{}{}
		}
		l.enrollments[e.CourseID] = en
	}
	return l
}
