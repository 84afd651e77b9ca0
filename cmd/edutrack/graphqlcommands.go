package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/readapi/graphql"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// graphqlCommands runs the GraphQL mutations' commands on the command handler: the port
// readapi/graphql declares, wired here because only cmd/ may meet both sides. A new command is
// one case below, beside its mutation in the schema.
type graphqlCommands struct{ h *commands.Handler }

func (g graphqlCommands) Execute(ctx context.Context, gm graphql.CommandMeta, name string, input any) (model.CommandResult, error) {
	m := commands.Meta{CommandID: uuid.NewString(), Actor: gm.Actor, RequestID: gm.RequestID, CorrelationID: gm.CorrelationID}
	if m.RequestID == "" {
		m.RequestID = m.CommandID
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.RequestID
	}
	var res commands.Result
	var err error
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
	default:
		err = fmt.Errorf("graphql: no command for %s (%T)", name, input)
	}
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
