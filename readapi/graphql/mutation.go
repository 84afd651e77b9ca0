package graphql

import (
	"context"
	"fmt"
	"net/http"

	gqlgen "github.com/99designs/gqlgen/graphql"

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
	// StartModuleFileUpload declares a module file, as Execute runs the others: its answer
	// says where to send the bytes.
	StartModuleFileUpload(ctx context.Context, m CommandMeta, input model.StartModuleFileUploadInput) (model.FileUploadResult, error)
}

// CommandMeta is what a command records of who sent it and in which request.
type CommandMeta struct {
	Actor                    domain.Actor
	RequestID, CorrelationID string
	// IdempotencyKey is the request's Idempotency-Key header, if any: it names this one
	// mutation (refused when the request holds several), bound as the write API binds it.
	IdempotencyKey string
}

func (r *resolver) Mutation() exec.MutationResolver { return mutationResolver{r.s} }

type mutationResolver struct{ s *Server }

// execute sends one mutation's command as the caller.
func (m mutationResolver) execute(ctx context.Context, name string, input any) (*model.CommandResult, error) {
	meta, err := m.meta(ctx)
	if err != nil {
		return nil, err
	}
	res, err := m.s.opts.Commands.Execute(ctx, meta, name, input)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// meta is what the command records of the request of ctx, once the request may send it.
func (m mutationResolver) meta(ctx context.Context) (CommandMeta, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return CommandMeta{}, err
	}
	if m.s.opts.Commands == nil {
		return CommandMeta{}, problem.New(http.StatusServiceUnavailable, "", "this process does not run commands; send mutations to one with the write role")
	}
	req := requestOf(ctx)
	if req.idempotencyKey != "" {
		if n := len(gqlgen.CollectFields(gqlgen.GetOperationContext(ctx), gqlgen.GetOperationContext(ctx).Operation.SelectionSet, []string{"Mutation"})); n != 1 {
			// Each of them refuses, so none runs: one key names one command.
			return CommandMeta{}, problem.New(http.StatusBadRequest, "Idempotency-Key",
				fmt.Sprintf("an Idempotency-Key names one mutation, and this request holds %d: send each in a request of its own, with its own key", n))
		}
	}
	return CommandMeta{Actor: a, RequestID: req.id, CorrelationID: req.correlationID, IdempotencyKey: req.idempotencyKey}, nil
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

func (m mutationResolver) StartModuleFileUpload(ctx context.Context, in model.StartModuleFileUploadInput) (*model.FileUploadResult, error) {
	meta, err := m.meta(ctx)
	if err != nil {
		return nil, err
	}
	res, err := m.s.opts.Commands.StartModuleFileUpload(ctx, meta, in)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

func (m mutationResolver) CompleteModuleFileUpload(ctx context.Context, in model.ModuleFileInput) (*model.CommandResult, error) {
	return m.execute(ctx, "completeModuleFileUpload", in)
}

func (m mutationResolver) UploadCourseImage(ctx context.Context, in model.UploadCourseImageInput) (*model.CommandResult, error) {
	return m.execute(ctx, "uploadCourseImage", in)
}
