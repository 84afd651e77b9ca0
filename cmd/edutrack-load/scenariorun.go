package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/edutrack/edutrack/domain"
)

// route is a templated route of the scenario, measured on its own.
type route int

const (
	routeCatalog route = iota
	routeCatalogPage
	routeSearch
	routeCourse
	routeImage
	routeEnroll
	routeComplete
	routeDashboard
	routeCertificate
	routeCourseStats
	routeRoster
	routeEdit
	routeTicket
	routeLive
	routeCount
)

func (r route) String() string {
	return [...]string{
		"GET /v1/courses?category=&level=&sort=",
		"GET /v1/courses?cursor= (next page)",
		"GET /v1/courses?q= (search)",
		"GET /v1/courses/{id}",
		"GET /media/{key} (course image)",
		"POST /v1/courses/{id}/enrollments",
		"POST /v1/learners/{id}/courses/{id}/modules/{id}/complete",
		"GET /v1/learners/{id}/dashboard",
		"GET /v1/learners/{id}/certificates/{courseId}",
		"GET /v1/courses/{id}/stats",
		"GET /v1/courses/{id}/roster",
		"PATCH /v1/courses/{id}",
		"POST /v1/live/tickets",
		"GET /v1/live (open)",
	}[r]
}

// scenarioSeed is the second half of every virtual user's random source; the first is its index.
const scenarioSeed = 0x7363656e6172696f // "scenario"

// runScenarioPhase sets the school up, runs its users for -warmup (the ramp, in which they
// start one after another and open their streams) plus -duration, and reports the measured time.
func runScenarioPhase(ctx context.Context, stdout io.Writer, rep *report, admin *api, cfg config) error {
	if err := raiseFDLimit(scenarioFDs(cfg)); err != nil {
		return err
	}
	fx := newScenarioFixture(cfg)
	started := time.Now()
	pos, err := scenarioSetup(ctx, admin, fx)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	setupTook := time.Since(started)
	fmt.Fprintf(stdout, "\nscenario setup: %d instructors, %d courses x %d modules, %d learners (%d of them through a whole course) in %s; log at position %d\n",
		len(fx.instructors), len(fx.courses), len(fx.modules), len(fx.learners), fx.seeded, setupTook.Round(time.Millisecond), pos)

	// Every process that serves reads must show the setup before the users come; every process
	// is watched.
	servers := []*api{admin}
	for _, a := range cfg.readAddrs {
		r := newAPI(a, 2).asEach(cfg.tok.admin)
		defer r.close()
		servers = append(servers, r)
	}
	started = time.Now()
	readers := servers
	if len(cfg.readAddrs) > 0 {
		readers = servers[1:] // -addr then serves commands, not reads
	}
	for _, s := range readers {
		if err := settle(ctx, s, fixture{courses: []string{fx.courses[0].id}}, pos); err != nil {
			return fmt.Errorf("%s: %w", s.base, err)
		}
	}
	rep.settled(stdout, pos, time.Since(started))

	sc := &scenario{cfg: cfg, fx: fx}
	for i := range sc.routes {
		sc.routes[i].res = newResult()
	}
	users := scenarioUsers(sc, cfg)
	defer func() {
		for _, v := range users {
			v.write.close()
			if v.read != v.write {
				v.read.close()
			}
		}
	}()

	sc.start = time.Now()
	sc.measureFrom = sc.start.Add(cfg.warmup)
	sc.end = sc.measureFrom.Add(cfg.duration)
	watch := newServerWatch(servers, cfg.serverPIDs)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watch.run(ctx, sc.measureFrom, sc.end)
	}()

	var wg sync.WaitGroup
	for i, v := range users {
		// Spread over the ramp, in an order of their own, so that instructors come among learners.
		offset := time.Duration(float64(cfg.warmup) * float64((i*7919)%len(users)) / float64(len(users)))
		wg.Go(func() { v.run(ctx, offset) })
	}
	wg.Wait()
	<-watchDone
	sc.closing.Store(true)
	for _, v := range users {
		if v.stream != nil {
			v.stream.close()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rep.addScenarioPhase(stdout, sc, watch, setupTook, pos)
	return nil
}

// scenarioUsers makes the virtual users: the instructors first, each watching the first course
// it teaches, then the learners; each with its token and its own connections.
func scenarioUsers(sc *scenario, cfg config) []*vu {
	fx := sc.fx
	users := make([]*vu, 0, len(fx.instructors)+len(fx.learners))
	add := func(id string, role domain.Role, course int) {
		i := len(users)
		header := cfg.tok.bearer(id, role)
		write := newAPI(cfg.addr, 1).as(header)
		read := write
		if len(cfg.readAddrs) > 0 {
			read = newAPI(cfg.readAddrs[i%len(cfg.readAddrs)], 1).as(header)
		}
		rng := rand.New(rand.NewPCG(uint64(i), scenarioSeed))
		users = append(users, &vu{sc: sc, id: id, role: role, write: write, read: read, rng: rng,
			popular: rand.NewZipf(rng, cfg.zipfS, 1, uint64(len(fx.courses)-1)), course: course, progress: map[int]int{}})
	}
	for i, id := range fx.instructors {
		add(id, domain.Instructor, i) // course i is taught by instructor i % len(instructors)
	}
	for i, id := range fx.learners {
		add(id, domain.Learner, -1)
		if i < fx.seeded {
			// Its seeded course is done: the learner does not enroll in it again.
			users[len(users)-1].progress[i%len(fx.courses)] = len(fx.modules)
		}
	}
	return users
}

// raiseFDLimit raises this process's open file limit to need if it is lower, as far as the hard
// limit allows (Go raises the soft limit to the hard one at start already), and fails if that is
// not enough: the users would otherwise fail to connect, one by one, as errors of the run.
func raiseFDLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max >= need {
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the scenario needs %d open files (connections and streams of its users) and the limit is %d (hard %d): "+
		"raise it with ulimit -n %d, or run fewer -users", need, lim.Cur, lim.Max, need)
}
