package commands_test

import (
	"context"
	"errors"
	"testing"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
)

// A command id names one request. Sent again with the same request, the command answers its
// first result; sent with another one, it answers ErrRequestMismatch and appends nothing, even
// through a handler that never saw the first (a restart).
func TestACommandIDBindsItsRequest(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, draftCourse()...)
	ctx := context.Background()
	retitle := func(h *commands.Handler, request, title string) (commands.Result, error) {
		m := meta()
		m.CommandID, m.Request = "cmd-retitle", request
		return h.UpdateCourseDetails(ctx, m, commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr(title)}})
	}
	first, err := retitle(e.h, "request-1", "Go 2")
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*commands.Handler{"the same handler": e.h, "a new handler": e.handler(e.store, commands.Options{})} {
		t.Run("answers_the_first_result_to_the_same_request_through_"+name, func(t *testing.T) {
			again, err := retitle(h, "request-1", "Go 2")
			if err != nil || again.Version != first.Version || again.Position != first.Position {
				t.Errorf("retry = %+v, %v; want %+v", again, err, first)
			}
		})
		t.Run("refuses_another_request_through_"+name, func(t *testing.T) {
			head := e.head()
			_, err := retitle(h, "request-2", "Go 3")
			if !errors.Is(err, commands.ErrRequestMismatch) {
				t.Errorf("err = %v, want ErrRequestMismatch", err)
			}
			if e.head() != head {
				t.Errorf("the refused command appended: head %d -> %d", head, e.head())
			}
		})
	}
	t.Run("answers_a_command_that_names_no_request_as_before", func(t *testing.T) {
		m := meta()
		m.CommandID = "cmd-module"
		a, err1 := e.h.AddModule(ctx, m, commands.AddModule{CourseID: "go", ModuleID: "m1", Title: "Intro"})
		b, err2 := e.h.AddModule(ctx, m, commands.AddModule{CourseID: "go", ModuleID: "m1", Title: "Intro"})
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("retried AddModule: %+v %v, then %+v %v; want the same answer", a, err1, b, err2)
		}
	})
}

// A retried command is answered only to a sender who may still send it.
func TestARetryRechecksTheSendersAuthorization(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, append(draftCourse(), registered("ins2", "instructor"))...)
	ctx := context.Background()
	send := func(role domain.Role) (commands.Result, error) {
		m := meta()
		m.CommandID, m.Request, m.Actor = "cmd-retitle", "request-1", domain.Actor{UserID: "ins2", Role: role}
		return e.h.UpdateCourseDetails(ctx, m, commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("Go 2")}})
	}
	if _, err := send(domain.Admin); err != nil {
		t.Fatalf("as an admin: %v", err)
	}
	// ins2 is an instructor now, and go is ins's course.
	if res, err := send(domain.Instructor); !errors.Is(err, course.ErrNotFound) {
		t.Errorf("the retry as an instructor of another course answered %+v, %v; want course not found", res, err)
	}
}
