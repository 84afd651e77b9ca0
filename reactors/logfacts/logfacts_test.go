package logfacts_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/riverqueue/river/rivertype"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/reactors/logfacts"
)

// streams is a log of a few streams, each a list of events.
type streams map[string][]any

func (s streams) ReadStream(_ context.Context, stream string, _ uint64, _ int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for _, e := range s[stream] {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		out = append(out, eventstore.RecordedEvent{Type: e.(interface{ EventType() string }).EventType(), Data: b})
	}
	return out, nil
}

func TestTheFactsAreAsTheLastEventsLeaveThem(t *testing.T) {
	log := streams{
		user.StreamPrefix + "ada": {user.Registered{UserID: "ada", Name: "Ada", Email: "ada@old.example", Role: "learner"},
			user.NameChanged{UserID: "ada", Name: "Ada Lovelace"}, user.EmailChanged{UserID: "ada", Email: "ada@new.example"}},
		course.StreamPrefix + "go": {course.Created{CourseID: "go", Title: "Go", InstructorID: "grace"},
			course.DetailsUpdated{CourseID: "go", Title: "Go, properly"}},
	}
	who, err := logfacts.Account(t.Context(), log, "ada")
	if err != nil || who.Name != "Ada Lovelace" || who.Address != "ada@new.example" {
		t.Errorf("Account(ada) = %+v, %v; want the new name and address", who, err)
	}
	c, err := logfacts.CourseOf(t.Context(), log, "go")
	if err != nil || c != (logfacts.Course{Title: "Go, properly", InstructorID: "grace"}) {
		t.Errorf("CourseOf(go) = %+v, %v; want the new title and the instructor", c, err)
	}
}

// An unknown user or course cancels the job: no retry would find them.
func TestWhatTheLogDoesNotKnowCancelsTheJob(t *testing.T) {
	var cancel *rivertype.JobCancelError
	if _, err := logfacts.Account(t.Context(), streams{}, "nobody"); !errors.As(err, &cancel) {
		t.Errorf("Account(nobody): %v; want the job cancelled", err)
	}
	if _, err := logfacts.CourseOf(t.Context(), streams{}, "nothing"); !errors.As(err, &cancel) {
		t.Errorf("CourseOf(nothing): %v; want the job cancelled", err)
	}
}
