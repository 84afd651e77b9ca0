package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/readapi/graphql"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// graphqlCommands runs the GraphQL mutations' commands on the command handler: the port
// readapi/graphql declares, wired here because only cmd/ may meet both sides. A new command is
// one case below, beside its mutation in the schema.
// An Idempotency-Key binds a mutation as it binds a REST request, in the write API's own index
// (writeapi.Keys): the mutation's name stands for the route, its input for the body.
type graphqlCommands struct {
	h      *commands.Handler
	keys   *writeapi.Keys
	images *writeapi.Images
}

// meta is the command's metadata, its id bound to the request's Idempotency-Key if it has one.
func (g graphqlCommands) meta(gm graphql.CommandMeta, name string, input any) (commands.Meta, error) {
	m := commands.Meta{CommandID: uuid.NewString(), Actor: gm.Actor, RequestID: gm.RequestID, CorrelationID: gm.CorrelationID}
	if gm.IdempotencyKey != "" {
		body, err := json.Marshal(input)
		if err != nil {
			return m, fmt.Errorf("encode the input of %s: %w", name, err)
		}
		if err := g.keys.Bind(&m, gm.IdempotencyKey, "graphql "+name, body); err != nil {
			return m, err
		}
	}
	if m.RequestID == "" {
		m.RequestID = m.CommandID
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.RequestID
	}
	return m, nil
}

// done answers a command's outcome as the write API does, and remembers its key on success.
func (g graphqlCommands) done(m commands.Meta, key string, err error) error {
	if err = writeapi.KeyError(err); err == nil {
		g.keys.Done(m, key)
	}
	return err
}

func (g graphqlCommands) StartModuleFileUpload(ctx context.Context, gm graphql.CommandMeta, in model.StartModuleFileUploadInput) (model.FileUploadResult, error) {
	m, err := g.meta(gm, "startModuleFileUpload", in)
	if err != nil {
		return model.FileUploadResult{}, err
	}
	// The file is named by the command, as on the route: a retry with the key names the same file.
	u := course.FileUpload{FileID: m.CommandID, ModuleID: in.ModuleID, Name: in.Name, Type: in.Type, Size: int64(in.Size), SHA256: in.Sha256}
	res, err := g.h.StartModuleFileUpload(ctx, m, commands.StartModuleFileUpload{CourseID: in.CourseID, Upload: u})
	if err := g.done(m, gm.IdempotencyKey, err); err != nil {
		return model.FileUploadResult{}, err
	}
	return model.FileUploadResult{ID: res.ID, Version: res.Version, Position: res.Position, FileID: res.FileID, UploadURL: res.UploadURL, ExpiresAt: res.ExpiresAt}, nil
}

func (g graphqlCommands) Execute(ctx context.Context, gm graphql.CommandMeta, name string, input any) (model.CommandResult, error) {
	if in, ok := input.(model.UploadCourseImageInput); ok {
		// The image binds its key itself, by its digest, as the REST upload does.
		return g.uploadImage(ctx, gm, in)
	}
	m, err := g.meta(gm, name, input)
	if err != nil {
		return model.CommandResult{}, err
	}
	var res commands.Result
	switch in := input.(type) {
	case model.RegisterUserInput:
		c := commands.RegisterUser{Name: in.Name, Email: in.Email, Role: in.Role}
		if c.ID, err = chosenID(in.ID, m); err == nil {
			res, err = g.h.RegisterUser(ctx, m, c)
		}
	case model.UpdateUserInput:
		res, err = g.h.UpdateUser(ctx, m, commands.UpdateUser{ID: in.ID, Name: in.Name, Email: in.Email})
	case model.CreateCourseInput:
		c := commands.CreateCourse{Title: in.Title, Category: in.Category, Level: in.Level, InstructorID: in.InstructorID}
		if in.Description != nil {
			c.Description = *in.Description
		}
		if c.ID, err = chosenID(in.ID, m); err == nil {
			res, err = g.h.CreateCourse(ctx, m, c)
		}
	case model.UpdateCourseInput:
		p := course.DetailsPatch{Title: in.Title, Description: in.Description, Category: in.Category}
		if in.Level != nil {
			l := course.Level(*in.Level)
			p.Level = &l
		}
		res, err = g.h.UpdateCourseDetails(ctx, m, commands.UpdateCourseDetails{ID: in.ID, Patch: p})
	case model.AddModuleInput:
		c := commands.AddModule{CourseID: in.CourseID, Title: in.Title}
		if c.ModuleID, err = chosenID(in.ModuleID, m); err == nil {
			res, err = g.h.AddModule(ctx, m, c)
		}
	case model.CourseInput:
		switch name {
		case "publishCourse":
			res, err = g.h.PublishCourse(ctx, m, commands.PublishCourse{ID: in.ID})
		case "archiveCourse":
			res, err = g.h.ArchiveCourse(ctx, m, commands.ArchiveCourse{ID: in.ID})
		default:
			err = fmt.Errorf("graphql: no command %s", name)
		}
	case model.EnrollmentInput:
		switch name {
		case "enrollStudent":
			res, err = g.h.EnrollStudent(ctx, m, commands.EnrollStudent{CourseID: in.CourseID, LearnerID: in.LearnerID})
		case "withdrawEnrollment":
			res, err = g.h.WithdrawEnrollment(ctx, m, commands.WithdrawEnrollment{CourseID: in.CourseID, LearnerID: in.LearnerID})
		default:
			err = fmt.Errorf("graphql: no command %s", name)
		}
	case model.CompleteModuleInput:
		var r commands.CompleteModuleResult
		r, err = g.h.CompleteModule(ctx, m, commands.CompleteModule{LearnerID: in.LearnerID, CourseID: in.CourseID, ModuleID: in.ModuleID})
		res = r.Result
	case model.ModuleFileInput:
		res, err = g.h.CompleteModuleFileUpload(ctx, m, commands.CompleteModuleFileUpload{CourseID: in.CourseID, ModuleID: in.ModuleID, FileID: in.FileID})
		err = writeapi.UploadMismatch(err)
	default:
		err = fmt.Errorf("graphql: no command for %s (%T)", name, input)
	}
	if err := g.done(m, gm.IdempotencyKey, err); err != nil {
		return model.CommandResult{}, err
	}
	return model.CommandResult{ID: res.ID, Version: res.Version, Position: res.Position}, nil
}

// uploadImage takes a course image through the REST upload's own checks (writeapi.Images.Take).
func (g graphqlCommands) uploadImage(ctx context.Context, gm graphql.CommandMeta, in model.UploadCourseImageInput) (model.CommandResult, error) {
	if g.images == nil {
		return model.CommandResult{}, problem.New(http.StatusServiceUnavailable, "", "this process takes no images")
	}
	if !domain.ValidID(in.CourseID) {
		return model.CommandResult{}, problem.New(http.StatusNotFound, "courseId", "course not found")
	}
	res, err := g.images.Take(ctx, writeapi.ImageUpload{CourseID: in.CourseID, Body: in.Image.File, Size: in.Image.Size,
		Meta: commands.Meta{Actor: gm.Actor, RequestID: gm.RequestID, CorrelationID: gm.CorrelationID},
		Key:  gm.IdempotencyKey, Route: "graphql uploadCourseImage " + in.CourseID})
	if err != nil {
		return model.CommandResult{}, err
	}
	return model.CommandResult{ID: res.ID, Version: res.Version, Position: res.Position}, nil
}

// chosenID is the id a client chose, checked as the write API checks it, or the command's own.
func chosenID(given *string, m commands.Meta) (string, error) {
	if given == nil {
		return m.CommandID, nil
	}
	if !domain.ValidID(*given) {
		return "", problem.New(http.StatusBadRequest, "id", "must match [a-z0-9-]{1,64}")
	}
	return *given, nil
}
