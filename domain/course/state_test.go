package course_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
)

// TestRestore: a course restored from its state after any prefix of its history, then given the
// rest, is the course a full replay builds, through JSON as snapshots are stored.
func TestRestore(t *testing.T) {
	history := []domain.Event{
		course.Created{CourseID: id, Title: "Go", Category: "programming", Level: course.LevelBeginner, InstructorID: "u-teacher", At: t0},
		course.ModuleAdded{CourseID: id, ModuleID: "intro", Title: "Intro", At: t0},
		course.DetailsUpdated{CourseID: id, Title: "Go, properly", Category: "programming", Level: course.LevelAdvanced, At: t1},
		course.ModuleAdded{CourseID: id, ModuleID: "types", Title: "Types", At: t1},
		course.Published{CourseID: id, At: t1},
		course.ModuleAdded{CourseID: id, ModuleID: "intro", Title: "Intro again", At: t1},
		course.ModuleAdded{CourseID: id, ModuleID: "tests", Title: "Tests", At: t2},
		course.Archived{CourseID: id, At: t2},
	}
	full := course.New(id)
	for _, e := range history {
		full.Apply(e)
	}
	for cut := range len(history) + 1 {
		head := course.New(id)
		for _, e := range history[:cut] {
			head.Apply(e)
		}
		raw, err := json.Marshal(head.State())
		if err != nil {
			t.Fatal(err)
		}
		var s course.State
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		c := course.Restore(id, s)
		for _, e := range history[cut:] {
			c.Apply(e)
		}
		if diff := cmp.Diff(state(full), state(c)); diff != "" {
			t.Errorf("restored after %d events, then replayed (-full replay +restored):\n%s", cut, diff)
		}
		for _, m := range []string{"intro", "types", "tests", "none"} {
			if c.HasModule(m) != full.HasModule(m) {
				t.Errorf("restored after %d events: HasModule(%q) = %v, want %v", cut, m, c.HasModule(m), full.HasModule(m))
			}
		}
	}
}
