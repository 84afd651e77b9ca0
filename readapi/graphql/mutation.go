package graphql

import (
	"context"
	"net/http"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// Commands is the command side as the mutations reach it: cmd/edutrack wires it to the
// commands package. The read side may not import commands (it appends nothing but through
// ports, as the disclosures do), so this package declares the one method it needs, and each
// mutation is one line here and one case there.
type Commands interface {
	// Execute runs the command name (the mutation's field name) with the mutation's input, one
	// of the model's *Input types, as m's actor, and answers its result.
	Execute(ctx context.Context, m CommandMeta, name string, input any) (model.CommandResult, error)
}

// CommandMeta is what a command records of who sent it and in which request.
type CommandMeta struct {
	Actor                    domain.Actor
	RequestID, CorrelationID string
}

func (r *resolver) Mutation() exec.MutationResolver { return mutationResolver{r.s} }

type mutationResolver struct{ s *Server }

// execute sends one mutation's command as the caller.
func (m mutationResolver) execute(ctx context.Context, name string, input any) (*model.CommandResult, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return nil, err
	}
	if m.s.opts.Commands == nil {
		return nil, problem.New(http.StatusServiceUnavailable, "", "this process does not run commands; send mutations to one with the write role")
	}
	req := requestOf(ctx)
	res, err := m.s.opts.Commands.Execute(ctx, CommandMeta{Actor: a, RequestID: req.id, CorrelationID: req.correlationID}, name, input)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

func (m mutationResolver) RegisterUser(ctx context.Context, in model.RegisterUserInput) (*model.CommandResult, error) {
	return m.execute(ctx, "registerUser", in)
}

func (m mutationResolver) UpdateUser(ctx context.Context, in model.UpdateUserInput) (*model.CommandResult, error) {
	return m.execute(ctx, "updateUser", in)
}

func (m mutationResolver) CreateCourse(ctx context.Context, in model.CreateCourseInput) (*model.CommandResult, error) {
	return m.execute(ctx, "createCourse", in)
}

func (m mutationResolver) UpdateCourse(ctx context.Context, in model.UpdateCourseInput) (*model.CommandResult, error) {
	return m.execute(ctx, "updateCourse", in)
}

func (m mutationResolver) AddModule(ctx context.Context, in model.AddModuleInput) (*model.CommandResult, error) {
	return m.execute(ctx, "addModule", in)
}

func (m mutationResolver) PublishCourse(ctx context.Context, in model.CourseInput) (*model.CommandResult, error) {
	return m.execute(ctx, "publishCourse", in)
}

func (m mutationResolver) ArchiveCourse(ctx context.Context, in model.CourseInput) (*model.CommandResult, error) {
	return m.execute(ctx, "archiveCourse", in)
}

func (m mutationResolver) EnrollStudent(ctx context.Context, in model.EnrollmentInput) (*model.CommandResult, error) {
	return m.execute(ctx, "enrollStudent", in)
}

func (m mutationResolver) WithdrawEnrollment(ctx context.Context, in model.EnrollmentInput) (*model.CommandResult, error) {
	return m.execute(ctx, "withdrawEnrollment", in)
}

func (m mutationResolver) CompleteModule(ctx context.Context, in model.CompleteModuleInput) (*model.CommandResult, error) {
	return m.execute(ctx, "completeModule", in)
}
