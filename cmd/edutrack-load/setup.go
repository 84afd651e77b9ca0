package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"golang.org/x/sync/errgroup"
)

// idPattern is the server's rule for every id.
var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// fixture is the data the write phase needs, named before anything is created.
type fixture struct {
	instructor string
	courses    []string
	// modules are the module ids of every course, in the order learners complete them.
	modules []string
	// learners holds, per client, the learners that client alone enrolls and advances, so no two
	// clients race on one learner.
	learners [][]string
}

func newFixture(cfg config) (fixture, error) {
	fx := fixture{instructor: cfg.prefix + "-instructor"}
	for i := range cfg.courses {
		fx.courses = append(fx.courses, fmt.Sprintf("%s-c%03d", cfg.prefix, i+1))
	}
	// Module ids are scoped by their course, so they need no prefix.
	for i := range cfg.modules {
		fx.modules = append(fx.modules, fmt.Sprintf("m%03d", i+1))
	}
	for c := range cfg.clients {
		var own []string
		for j := range cfg.learners {
			own = append(own, fmt.Sprintf("%s-l%04d", cfg.prefix, c*cfg.learners+j+1))
		}
		fx.learners = append(fx.learners, own)
	}

	// The longest ids are the last of each kind.
	for _, id := range []string{fx.instructor, fx.courses[len(fx.courses)-1], fx.modules[len(fx.modules)-1],
		fx.learners[len(fx.learners)-1][cfg.learners-1]} {
		if !idPattern.MatchString(id) {
			return fixture{}, fmt.Errorf("id %q does not match %s: shorten -prefix", id, idPattern)
		}
	}
	return fx, nil
}

func (fx fixture) learnerCount() int { return len(fx.learners) * len(fx.learners[0]) }

type newUser struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

type newCourse struct {
	ID           string `json:"id"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	Category     string `json:"category"`
	Level        string `json:"level"`
	InstructorID string `json:"instructorId"`
}

type newModule struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

type enrollment struct {
	LearnerID string `json:"learnerId"`
}

// setup registers the instructor, creates and publishes the courses, and registers the learners.
func setup(ctx context.Context, api *api, fx fixture) error {
	if err := register(ctx, api, fx.instructor, "instructor"); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for _, id := range fx.courses {
		g.Go(func() error { return createCourse(ctx, api, fx, id) })
	}
	for _, own := range fx.learners {
		for _, id := range own {
			g.Go(func() error { return register(ctx, api, id, "learner") })
		}
	}
	return g.Wait()
}

func register(ctx context.Context, api *api, id, role string) error {
	body := mustJSON(newUser{ID: id, Name: "Load " + role + " " + id, Email: id + "@load.edutrack.test", Role: role})
	if err := api.post(ctx, "/v1/users", body); err != nil {
		return fmt.Errorf("register %s %s: %w", role, id, err)
	}
	return nil
}

// createCourse creates the course, adds its modules one at a time so the server keeps their
// order, and publishes it.
func createCourse(ctx context.Context, api *api, fx fixture, id string) error {
	body := mustJSON(newCourse{
		ID:           id,
		Title:        "Load course " + id,
		Description:  "Created by edutrack-load.",
		Category:     "load-test",
		Level:        "beginner",
		InstructorID: fx.instructor,
	})
	if err := api.post(ctx, "/v1/courses", body); err != nil {
		return fmt.Errorf("create course %s: %w", id, err)
	}
	for i, m := range fx.modules {
		body := mustJSON(newModule{ID: m, Title: fmt.Sprintf("Module %d", i+1)})
		if err := api.post(ctx, "/v1/courses/"+id+"/modules", body); err != nil {
			return fmt.Errorf("add module %s to course %s: %w", m, id, err)
		}
	}
	if err := api.post(ctx, "/v1/courses/"+id+"/publish", nil); err != nil {
		return fmt.Errorf("publish course %s: %w", id, err)
	}
	return nil
}

// mustJSON encodes v, which is one of this file's flat structs of strings and cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
