package course

import (
	"slices"
	"time"
)

// State is everything a Course's replay builds, as plain data: a snapshot of the stream at one
// version, so a long history need not be replayed from its first event. Restore(id, c.State())
// is the same course as c.
type State struct {
	Status       Status    `json:"status"`
	Details      Details   `json:"details"`
	InstructorID string    `json:"instructorId"`
	Modules      []Module  `json:"modules"`
	PublishedAt  time.Time `json:"publishedAt"`
}

// State returns a copy of what the course's events built.
func (c *Course) State() State {
	return State{Status: c.status, Details: c.details, InstructorID: c.instructorID, Modules: c.Modules(), PublishedAt: c.publishedAt}
}

// Restore returns the course id as s describes it, ready for the events that follow s.
func Restore(id string, s State) *Course {
	c := &Course{id: id, status: s.Status, details: s.Details, instructorID: s.InstructorID,
		modules: slices.Clone(s.Modules), publishedAt: s.PublishedAt}
	if len(c.modules) > 0 {
		c.moduleIndex = make(map[string]int, len(c.modules))
		for i, m := range c.modules {
			c.moduleIndex[m.ID] = i
		}
	}
	return c
}
