package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// idPattern is the server's rule for every id.
var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// fixture is the data the phases need, named before anything is created.
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

// allLearners lists every client's learners, the first client's first.
func (fx fixture) allLearners() []string {
	var all []string
	for _, own := range fx.learners {
		all = append(all, own...)
	}
	return all
}

// seedDone is how many modules the setup completes in each course it enrolls a learner in: one
// course each, so a dashboard shows courses in progress and one not started.
var seedDone = [...]int{1, 2, 0}

// seed is an enrollment the setup makes, so dashboards are not empty: a course, and how many of
// its first modules are completed.
type seed struct{ course, done int }

// seeds are the enrollments the setup makes for a client's learner. Consecutive learners start at
// consecutive courses, so the enrollments spread over all courses. No course is completed, so
// the write phase still has a command to send for every pair.
func (fx fixture) seeds(client, learner int) []seed {
	g := client*len(fx.learners[0]) + learner
	seeds := make([]seed, 0, len(seedDone))
	for k := range min(len(seedDone), len(fx.courses)) {
		seeds = append(seeds, seed{course: (g + k) % len(fx.courses), done: min(seedDone[k], len(fx.modules)-1)})
	}
	return seeds
}

// seedCommands is how many commands the setup sends to make the seeds.
func (fx fixture) seedCommands() int {
	n := 0
	for c, own := range fx.learners {
		for j := range own {
			for _, s := range fx.seeds(c, j) {
				n += 1 + s.done
			}
		}
	}
	return n
}

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

// setup registers the instructor, creates and publishes the courses, registers the learners,
// and enrolls each learner in the courses of its seeds. It returns the highest log position its
// commands answered.
func setup(ctx context.Context, api *api, fx fixture) (uint64, error) {
	var last position
	post := func(ctx context.Context, path string, body []byte) error {
		pos, err := api.command(ctx, path, body)
		last.see(pos)
		return err
	}
	if err := register(ctx, post, fx.instructor, "instructor"); err != nil {
		return 0, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for _, id := range fx.courses {
		g.Go(func() error { return createCourse(gctx, post, fx, id) })
	}
	for _, own := range fx.learners {
		for _, id := range own {
			g.Go(func() error { return register(gctx, post, id, "learner") })
		}
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}

	// Enrollment needs the course published and the learner registered, hence a second round.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for c, own := range fx.learners {
		for j, id := range own {
			g.Go(func() error { return seedLearner(gctx, post, fx, id, fx.seeds(c, j)) })
		}
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return last.get(), nil
}

// position is the highest log position seen by concurrent commands.
type position struct {
	mu  sync.Mutex
	max uint64
}

func (p *position) see(pos uint64) {
	p.mu.Lock()
	p.max = max(p.max, pos)
	p.mu.Unlock()
}

func (p *position) get() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// poster sends one setup command.
type poster func(ctx context.Context, path string, body []byte) error

func register(ctx context.Context, post poster, id, role string) error {
	body := mustJSON(newUser{ID: id, Name: "Load " + role + " " + id, Email: id + "@load.edutrack.test", Role: role})
	if err := post(ctx, "/v1/users", body); err != nil {
		return fmt.Errorf("register %s %s: %w", role, id, err)
	}
	return nil
}

// seedLearner enrolls the learner in the seeds' courses and completes their first modules, in
// order.
func seedLearner(ctx context.Context, post poster, fx fixture, id string, seeds []seed) error {
	for _, s := range seeds {
		course := fx.courses[s.course]
		if err := post(ctx, "/v1/courses/"+course+"/enrollments", mustJSON(enrollment{LearnerID: id})); err != nil {
			return fmt.Errorf("enroll %s in %s: %w", id, course, err)
		}
		for _, m := range fx.modules[:s.done] {
			if err := post(ctx, "/v1/learners/"+id+"/courses/"+course+"/modules/"+m+"/complete", nil); err != nil {
				return fmt.Errorf("complete %s of %s for %s: %w", m, course, id, err)
			}
		}
	}
	return nil
}

// settleTimeout bounds how long settle waits for the read models; the server answers 503 after
// its own wait (3 s by default), and settle asks again.
const settleTimeout = 2 * time.Minute

// settle waits until the read models have applied the log up to pos, so a phase that reads
// measures reads, not the projections catching up, and finds every document. The roster route
// waits for both projections.
func settle(ctx context.Context, api *api, fx fixture, pos uint64) error {
	path := fmt.Sprintf("/v1/courses/%s/roster?limit=1&minPosition=%d", fx.courses[0], pos)
	deadline := time.Now().Add(settleTimeout)
	for {
		err := api.get(ctx, path)
		se, ok := errors.AsType[*statusError](err)
		switch {
		case err == nil:
			return nil
		case !ok || se.code != http.StatusServiceUnavailable || time.Now().After(deadline):
			return fmt.Errorf("wait for the read models to reach position %d: %w", pos, err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// createCourse creates the course, adds its modules one at a time so the server keeps their
// order, and publishes it.
func createCourse(ctx context.Context, post poster, fx fixture, id string) error {
	body := mustJSON(newCourse{
		ID:           id,
		Title:        "Load course " + id,
		Description:  "Created by edutrack-load.",
		Category:     "load-test",
		Level:        "beginner",
		InstructorID: fx.instructor,
	})
	if err := post(ctx, "/v1/courses", body); err != nil {
		return fmt.Errorf("create course %s: %w", id, err)
	}
	for i, m := range fx.modules {
		body := mustJSON(newModule{ID: m, Title: fmt.Sprintf("Module %d", i+1)})
		if err := post(ctx, "/v1/courses/"+id+"/modules", body); err != nil {
			return fmt.Errorf("add module %s to course %s: %w", m, id, err)
		}
	}
	if err := post(ctx, "/v1/courses/"+id+"/publish", nil); err != nil {
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
