package commands_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/user"
)

func threeModulesAdaEnrolled() []action {
	return append(draftWithModules(), addModule("go", "m3", "Generics"), publish("go"), enroll("ada", "go"))
}

// retryCase sends a command, then the commands in between (after which deciding the command again
// would answer differently or append again), then the same command with the same Meta.
type retryCase struct {
	name    string
	given   []action
	when    action
	between []action
	stream  string
	// courseCompleted is what the first answer must say.
	courseCompleted bool
}

// retryModes are the ways a retry can reach a handler: the one that ran the command, another one
// on the same log (another process, or this one after a restart), or the same one after the
// aggregate left its cache.
var retryModes = []struct {
	name      string
	cacheSize int
	retryWith func(e *env) *commands.Handler
}{
	{"through_the_same_handler", 0, func(e *env) *commands.Handler { return e.h }},
	{"through_another_handler_on_the_same_log", 0, func(e *env) *commands.Handler { return e.handler(e.store, commands.Options{}) }},
	{"after_its_aggregate_left_a_one_entry_cache", 1, func(e *env) *commands.Handler {
		// Touch another aggregate of every kind; with room for one, the command's own are dropped.
		for _, a := range []action{updateUser(commands.UpdateUser{ID: "evictor"}), publish("evictor"), complete("evictor", "evictor", "evictor")} {
			a(context.Background(), e.h, meta())
		}
		return e.h
	}},
}

func TestRetriedCommand(t *testing.T) {
	cases := []retryCase{
		{
			name:    "register user",
			when:    registered("ada", "learner"),
			between: []action{updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Ada King")})},
			stream:  "user-ada",
		},
		{
			name:    "update user",
			given:   people(),
			when:    updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Ada King")}),
			between: []action{updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Name of ada")})},
			stream:  "user-ada",
		},
		{
			name:    "create course",
			given:   people(),
			when:    created("go"),
			between: []action{addModule("go", "m1", "Intro")},
			stream:  "course-go",
		},
		{
			name:    "add module",
			given:   draftCourse(),
			when:    addModule("go", "m1", "Intro"),
			between: []action{addModule("go", "m2", "Types")},
			stream:  "course-go",
		},
		{
			name:    "enroll student",
			given:   publishedCourse(),
			when:    enroll("ada", "go"),
			between: []action{withdraw("ada", "go")},
			stream:  "learner-ada",
		},
		{
			name:    "withdraw enrollment",
			given:   adaEnrolled(),
			when:    withdraw("ada", "go"),
			between: []action{enroll("ada", "go")},
			stream:  "learner-ada",
		},
		{
			name:    "complete module",
			given:   threeModulesAdaEnrolled(),
			when:    complete("ada", "go", "m1"),
			between: []action{complete("ada", "go", "m2")},
			stream:  "learner-ada",
		},
		{
			name:            "complete the module that completes the course",
			given:           append(adaEnrolled(), complete("ada", "go", "m1")),
			when:            complete("ada", "go", "m2"),
			between:         []action{addModule("go", "m3", "Generics"), complete("ada", "go", "m3")},
			stream:          "learner-ada",
			courseCompleted: true,
		},
	}
	for _, tc := range cases {
		for _, mode := range retryModes {
			t.Run(strings.ReplaceAll(tc.name, " ", "_")+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, commands.Options{CacheSize: mode.cacheSize})
				e.do(e.h, tc.given...)
				m := meta()
				first, err := tc.when(context.Background(), e.h, m)
				if err != nil {
					t.Fatalf("first attempt: %v", err)
				}
				if !first.Changed {
					t.Fatalf("first attempt changed nothing; the case must start with a change")
				}
				if first.CourseCompleted != tc.courseCompleted {
					t.Errorf("first answer: courseCompleted = %v, want %v", first.CourseCompleted, tc.courseCompleted)
				}
				e.do(e.h, tc.between...)
				before, head := e.read(tc.stream), e.head()

				h := mode.retryWith(e)
				retry, err := tc.when(context.Background(), h, m)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				if diff := cmp.Diff(first, retry); diff != "" {
					t.Errorf("retry answer (-first +retry):\n%s", diff)
				}
				if diff := cmp.Diff(before, e.read(tc.stream)); diff != "" {
					t.Errorf("retry changed %s (-before +after):\n%s", tc.stream, diff)
				}
				if got := e.head(); got != head {
					t.Errorf("log head moved from %d to %d on a retry", head, got)
				}
			})
		}
	}
}

// A retry must answer what the first attempt answered, courseCompleted included, even when a
// later command completed the course meanwhile.
func TestRetriedCompleteModuleAnswersAsItFirstDid(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, adaEnrolled()...)
	m := meta()
	first, err := complete("ada", "go", "m1")(context.Background(), e.h, m)
	if err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if first.CourseCompleted {
		t.Fatalf("first attempt completed the course; it has a second module")
	}
	e.do(e.h, complete("ada", "go", "m2"))

	retry, err := complete("ada", "go", "m1")(context.Background(), e.h, m)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if diff := cmp.Diff(first, retry); diff != "" {
		t.Errorf("retry answer (-first +retry):\n%s", diff)
	}
}

// Meta's zero value has no CommandID. Two different commands sent that way are not retries of
// each other: each must either change the log or be refused, never be answered with the other's
// result.
func TestCommandWithoutCommandID(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, people()...)
	for _, name := range []string{"Ada King", "Ada Byron"} {
		res, err := e.h.UpdateUser(context.Background(), commands.Meta{}, commands.UpdateUser{ID: "ada", Name: ptr(name)})
		if err != nil {
			continue // refusing a command without an id is a fine answer
		}
		recs := e.read("user-ada")
		last := recs[len(recs)-1]
		got := e.decode(recs[len(recs)-1:])
		want := []domain.Event{user.NameChanged{UserID: "ada", Name: name, At: t0}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rename to %q succeeded (version %d), but the log's last event (-want +got):\n%s", name, res.Version, diff)
		}
		if res.Version != last.Version || res.Position != last.Position {
			t.Errorf("rename to %q answered version %d position %d, the log's last event is %d at %d",
				name, res.Version, res.Position, last.Version, last.Position)
		}
	}
}
