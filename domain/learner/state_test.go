package learner_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

// TestRestore: a learner restored from its state after any prefix of its history, then given the
// rest, is the learner a full replay builds, through JSON as snapshots are stored.
func TestRestore(t *testing.T) {
	history := []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t1), moduleCompleted("intro", t1),
		resumed(t2), moduleCompleted("types", t2), courseCompleted(t2),
		learner.CertificateIssued{LearnerID: id, CourseID: courseID, CertificateID: "cert-1", At: t3},
		learner.Enrolled{LearnerID: id, CourseID: "c-rust", At: t3}, learner.ModuleCompleted{LearnerID: id, CourseID: "c-rust", ModuleID: "a", At: t3}}
	full := learner.New(id)
	for _, e := range history {
		full.Apply(e)
	}
	for cut := range len(history) + 1 {
		head := learner.New(id)
		for _, e := range history[:cut] {
			head.Apply(e)
		}
		raw, err := json.Marshal(head.State())
		if err != nil {
			t.Fatal(err)
		}
		var s learner.State
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		l := learner.Restore(id, s)
		for _, e := range history[cut:] {
			l.Apply(e)
		}
		if diff := cmp.Diff(state(full), state(l)); diff != "" {
			t.Errorf("restored after %d events, then replayed (-full replay +restored):\n%s", cut, diff)
		}
		if len(l.Changes()) != 0 {
			t.Errorf("restored after %d events: %d changes recorded, want none", cut, len(l.Changes()))
		}
	}
	t.Run("a restored learner decides as the replayed one: a completed module stays a no-op", func(t *testing.T) {
		l := learner.Restore(id, full.State())
		c := twoModules
		if _, err := l.CompleteModule(c, "intro", t3); err != nil || len(l.Changes()) != 0 {
			t.Errorf("completing a completed module: err %v, changes %+v; want neither", err, l.Changes())
		}
	})
}
