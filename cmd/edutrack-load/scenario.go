package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/domain"
)

// The scenario phase: -users virtual users of a school, each with its own token, its own
// keep-alive connection (two with -read-addrs: one to the write process, one to a read process)
// and its own live stream, opened with a ticket as a browser does. Learners go through sessions
// (browse the catalog, open a course, enroll, complete the next module, open the dashboard, now
// and then download a certificate the dashboard shows); instructors watch their courses' stats
// and roster and now and then edit a course. Every request is followed by a think time, drawn
// uniformly from half to one and a half -think, so the phase offers about -users / -think
// requests a second, each user at a human pace.

// scenarioCategories and scenarioLevels are what the catalog filters on; scenarioWords are the
// words titles are made of, which searches ask for.
var (
	scenarioCategories = []string{"mathematics", "science", "history", "languages", "arts"}
	scenarioLevels     = []string{"beginner", "intermediate", "advanced"}
	scenarioWords      = []string{"algebra", "physics", "rome", "spanish", "painting", "geometry", "chemistry", "poetry"}
)

// Shares of a learner's session: how often it browses the catalog (else it searches), goes on to
// the catalog's next page, and downloads a certificate its dashboard shows; how often an
// instructor edits the course whose stats it reads.
const (
	browseShare      = 0.75
	nextPageShare    = 0.3
	certificateShare = 0.1
	editShare        = 0.2
)

// seededShare is the share of learners the setup takes through a whole course, so that their
// dashboards show a certificate from the start.
const seededShare = 0.05

type scenarioFixture struct {
	courses     []scenarioCourse
	modules     []string
	learners    []string
	instructors []string
	seeded      int // learners[:seeded] completed courses[their index % len] in the setup
}

type scenarioCourse struct {
	id, category, level, title string
	instructor                 int
}

func newScenarioFixture(cfg config) scenarioFixture {
	p := cfg.prefix + "-s"
	fx := scenarioFixture{}
	for i := range cfg.instructors {
		fx.instructors = append(fx.instructors, fmt.Sprintf("%s-i%04d", p, i+1))
	}
	for i := range cfg.scenarioCourses {
		fx.courses = append(fx.courses, scenarioCourse{
			id:         fmt.Sprintf("%s-c%04d", p, i+1),
			category:   scenarioCategories[i%len(scenarioCategories)],
			level:      scenarioLevels[(i/len(scenarioCategories))%len(scenarioLevels)],
			title:      fmt.Sprintf("%s and %s %d", strings.ToUpper(scenarioWords[i%len(scenarioWords)][:1])+scenarioWords[i%len(scenarioWords)][1:], scenarioWords[(i/3)%len(scenarioWords)], i+1),
			instructor: i % cfg.instructors,
		})
	}
	for i := range cfg.scenarioModules {
		fx.modules = append(fx.modules, fmt.Sprintf("m%03d", i+1))
	}
	for i := range cfg.users - cfg.instructors {
		fx.learners = append(fx.learners, fmt.Sprintf("%s-l%06d", p, i+1))
	}
	fx.seeded = int(float64(len(fx.learners)) * seededShare)
	return fx
}

// scenarioSetup registers the users, creates and publishes the courses as their instructors'
// and takes the seeded learners through a course, as the admins of the pool: unmeasured, and
// retried after a 429, which a burst of setup commands may meet. It returns the highest log
// position its commands answered.
func scenarioSetup(ctx context.Context, admin *api, fx scenarioFixture) (uint64, error) {
	var last position
	post := func(ctx context.Context, path string, body []byte) error {
		for attempt := 0; ; attempt++ {
			pos, err := admin.command(ctx, path, body)
			if se, ok := errors.AsType[*statusError](err); ok && se.code == http.StatusTooManyRequests && attempt < 60 {
				if err := sleep(ctx, time.Second); err != nil {
					return err
				}
				continue
			}
			last.see(pos)
			return err
		}
	}
	run := func(n int, each func(ctx context.Context, i int) error) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(2 * setupWorkers)
		for i := range n {
			g.Go(func() error { return each(gctx, i) })
		}
		return g.Wait()
	}
	if err := run(len(fx.instructors), func(ctx context.Context, i int) error {
		return register(ctx, post, fx.instructors[i], "instructor")
	}); err != nil {
		return 0, err
	}
	if err := run(len(fx.courses)+len(fx.learners), func(ctx context.Context, i int) error {
		if i >= len(fx.courses) {
			return register(ctx, post, fx.learners[i-len(fx.courses)], "learner")
		}
		c := fx.courses[i]
		if err := post(ctx, "/v1/courses", mustJSON(newCourse{ID: c.id, Title: c.title, Description: "A course of the school scenario.",
			Category: c.category, Level: c.level, InstructorID: fx.instructors[c.instructor]})); err != nil {
			return fmt.Errorf("create course %s: %w", c.id, err)
		}
		for j, m := range fx.modules {
			if err := post(ctx, "/v1/courses/"+c.id+"/modules", mustJSON(newModule{ID: m, Title: fmt.Sprintf("Lesson %d", j+1)})); err != nil {
				return fmt.Errorf("add module %s to %s: %w", m, c.id, err)
			}
		}
		return post(ctx, "/v1/courses/"+c.id+"/publish", nil)
	}); err != nil {
		return 0, err
	}
	if err := run(fx.seeded, func(ctx context.Context, i int) error {
		c := fx.courses[i%len(fx.courses)].id
		return seedLearner(ctx, post, fixture{courses: []string{c}, modules: fx.modules}, fx.learners[i], []seed{{course: 0, done: len(fx.modules)}})
	}); err != nil {
		return 0, err
	}
	return last.get(), nil
}

// scenario is the state the virtual users share: the measured window and what it measured.
type scenario struct {
	cfg                   config
	fx                    scenarioFixture
	start, measureFrom    time.Time
	end                   time.Time
	routes                [routeCount]routeStats
	streamsOpen, messages atomic.Int64
	streamsEnded          atomic.Int64 // streams the server ended or that broke before the phase closed them
	closing               atomic.Bool
	firstStreamEnd        atomic.Pointer[string]
}

// routeStats is one templated route's requests of the measured window.
type routeStats struct {
	mu  sync.Mutex
	res *result
}

// vu is one virtual user.
type vu struct {
	sc      *scenario
	id      string
	role    domain.Role
	write   *api // the write process (or the only one), on a connection of its own
	read    *api // a read process, on a connection of its own; write without -read-addrs
	rng     *rand.Rand
	popular *rand.Zipf // course indexes, the first the most popular
	course  int        // an instructor's course; a learner's current course, -1 before its first
	done    int        // modules of the current course the learner completed
	// progress holds, per course the learner enrolled in, how many modules it completed.
	progress map[int]int
	stream   *stream
}

// timed sends one request of route as v and records it if it started in the measured window.
// keep returns the body.
func (v *vu) timed(ctx context.Context, r route, a *api, method, path string, body []byte, keep bool) ([]byte, error) {
	started := time.Now()
	b, n, err := a.send(ctx, method, path, body, keep)
	if ctx.Err() != nil {
		return b, err
	}
	if !started.Before(v.sc.measureFrom) && started.Before(v.sc.end) {
		s := &v.sc.routes[r]
		s.mu.Lock()
		s.res.record(opScenario, time.Since(started), n, err)
		s.mu.Unlock()
	}
	return b, err
}

// think waits the user's think time; it reports false once the phase is over.
func (v *vu) think(ctx context.Context) bool {
	d := time.Duration((0.5 + v.rng.Float64()) * float64(v.sc.cfg.think))
	if err := sleep(ctx, d); err != nil {
		return false
	}
	return time.Now().Before(v.sc.end)
}

// openLive trades the user's token for a ticket and opens its live stream with it, as a page
// does, on the read process.
func (v *vu) openLive(ctx context.Context, topic string) {
	b, err := v.timed(ctx, routeTicket, v.read, http.MethodPost, "/v1/live/tickets", nil, true)
	if err != nil {
		return
	}
	var t struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.Ticket == "" {
		return
	}
	u, _ := url.Parse(v.read.base)
	path := "/v1/live?topics=" + url.QueryEscape(topic) + "&ticket=" + url.QueryEscape(t.Ticket)
	started := time.Now()
	s, err := dialStream(ctx, u.Host, path, "")
	if !started.Before(v.sc.measureFrom) && started.Before(v.sc.end) || err != nil {
		rs := &v.sc.routes[routeLive]
		rs.mu.Lock()
		rs.res.record(opScenario, time.Since(started), 0, err)
		rs.mu.Unlock()
	}
	if err != nil {
		return
	}
	v.stream = s
	v.sc.streamsOpen.Add(1)
	go func() {
		err := readEvents(s.body, func(e sseEvent) {
			if e.hasID {
				v.sc.messages.Add(1)
			}
		})
		if !v.sc.closing.Load() {
			v.sc.streamsEnded.Add(1)
			msg := "the server ended the stream"
			if err != nil {
				msg = err.Error()
			}
			v.sc.firstStreamEnd.CompareAndSwap(nil, &msg)
		}
	}()
}

// run is the user's life in the phase: it starts at its offset in the ramp, opens its stream
// and goes through sessions until the phase ends.
func (v *vu) run(ctx context.Context, offset time.Duration) {
	if err := sleep(ctx, time.Until(v.sc.start.Add(offset))); err != nil {
		return
	}
	if v.role == domain.Instructor {
		v.openLive(ctx, "course:"+v.sc.fx.courses[v.course].id)
		for v.think(ctx) && v.instructorSession(ctx) {
		}
		return
	}
	v.openLive(ctx, "learner:"+v.id)
	for v.think(ctx) && v.learnerSession(ctx) {
	}
}

// learnerSession browses or searches the catalog, opens a course, enrolls in it if it is new,
// completes its next module, opens the dashboard and now and then downloads a certificate from
// it. It reports false once the phase is over.
func (v *vu) learnerSession(ctx context.Context) bool {
	fx := v.sc.fx
	if v.rng.Float64() < browseShare {
		q := url.Values{}
		switch v.rng.IntN(3) {
		case 0:
			q.Set("category", scenarioCategories[v.rng.IntN(len(scenarioCategories))])
		case 1:
			q.Set("category", scenarioCategories[v.rng.IntN(len(scenarioCategories))])
			q.Set("level", scenarioLevels[v.rng.IntN(len(scenarioLevels))])
		case 2:
			q.Set("sort", "popular")
		}
		b, err := v.timed(ctx, routeCatalog, v.read, http.MethodGet, "/v1/courses?"+q.Encode(), nil, true)
		var page struct {
			NextCursor *string `json:"nextCursor"`
		}
		if err == nil && json.Unmarshal(b, &page) == nil && page.NextCursor != nil && v.rng.Float64() < nextPageShare {
			if !v.think(ctx) {
				return false
			}
			q.Set("cursor", *page.NextCursor)
			_, _ = v.timed(ctx, routeCatalogPage, v.read, http.MethodGet, "/v1/courses?"+q.Encode(), nil, false)
		}
	} else {
		q := url.Values{"q": {scenarioWords[v.rng.IntN(len(scenarioWords))]}}
		_, _ = v.timed(ctx, routeSearch, v.read, http.MethodGet, "/v1/courses?"+q.Encode(), nil, false)
	}
	if !v.think(ctx) {
		return false
	}

	// Stay with the current course until it is done, else pick a popular one.
	if v.course < 0 || v.done == len(fx.modules) {
		v.course = int(v.popular.Uint64())
		v.done = v.progress[v.course]
	}
	c := fx.courses[v.course]
	detail, err := v.timed(ctx, routeCourse, v.read, http.MethodGet, "/v1/courses/"+c.id, nil, true)
	if err == nil {
		if path, ok := courseImage(detail); ok {
			_, _ = v.timed(ctx, routeImage, v.read, http.MethodGet, path, nil, false)
		}
	}
	if !v.think(ctx) {
		return false
	}
	if _, enrolled := v.progress[v.course]; !enrolled {
		if _, err := v.timed(ctx, routeEnroll, v.write, http.MethodPost, "/v1/courses/"+c.id+"/enrollments",
			mustJSON(enrollment{LearnerID: v.id}), false); err != nil {
			return v.think(ctx)
		}
		v.progress[v.course] = 0
		if !v.think(ctx) {
			return false
		}
	}
	if v.done < len(fx.modules) {
		path := "/v1/learners/" + v.id + "/courses/" + c.id + "/modules/" + fx.modules[v.done] + "/complete"
		if _, err := v.timed(ctx, routeComplete, v.write, http.MethodPost, path, nil, false); err == nil {
			v.done++
			v.progress[v.course] = v.done
		}
		if !v.think(ctx) {
			return false
		}
	}
	b, err := v.timed(ctx, routeDashboard, v.read, http.MethodGet, "/v1/learners/"+v.id+"/dashboard", nil, true)
	if err != nil || v.rng.Float64() >= certificateShare {
		return true
	}
	if path, ok := certificateOnDashboard(b, v.rng); ok {
		if !v.think(ctx) {
			return false
		}
		_, _ = v.timed(ctx, routeCertificate, v.read, http.MethodGet, path, nil, false)
	}
	return true
}

// instructorSession reads the stats and the roster of the instructor's course, now and then
// edits its description and reads it back. It reports false once the phase is over.
func (v *vu) instructorSession(ctx context.Context) bool {
	c := v.sc.fx.courses[v.course].id
	_, _ = v.timed(ctx, routeCourseStats, v.read, http.MethodGet, "/v1/courses/"+c+"/stats", nil, false)
	if !v.think(ctx) {
		return false
	}
	_, _ = v.timed(ctx, routeRoster, v.read, http.MethodGet, "/v1/courses/"+c+"/roster?limit=20", nil, false)
	if v.rng.Float64() >= editShare {
		return true
	}
	if !v.think(ctx) {
		return false
	}
	body := mustJSON(map[string]string{"description": "Revised " + time.Now().UTC().Format(time.RFC3339Nano)})
	if _, err := v.timed(ctx, routeEdit, v.write, http.MethodPatch, "/v1/courses/"+c, body, false); err != nil {
		return true
	}
	if !v.think(ctx) {
		return false
	}
	_, _ = v.timed(ctx, routeCourse, v.read, http.MethodGet, "/v1/courses/"+c, nil, false)
	return true
}

// certificateOnDashboard picks, from a dashboard, the route of one of the certificates it shows.
func certificateOnDashboard(dashboard []byte, rng *rand.Rand) (string, bool) {
	var d struct {
		Enrollments []struct {
			Certificate *struct {
				URL string `json:"url"`
			} `json:"certificate"`
		} `json:"enrollments"`
	}
	if json.Unmarshal(dashboard, &d) != nil {
		return "", false
	}
	var urls []string
	for _, e := range d.Enrollments {
		if e.Certificate != nil && strings.HasPrefix(e.Certificate.URL, "/") {
			urls = append(urls, e.Certificate.URL)
		}
	}
	if len(urls) == 0 {
		return "", false
	}
	return urls[rng.IntN(len(urls))], true
}

// courseImage is the hook of course images: the route of the image a course detail shows, if
// it shows one. It takes the detail's "image" field, either a path on this server (/media/...)
// or an object whose "url" is one, and none before the server has course images.
func courseImage(detail []byte) (string, bool) {
	var d struct {
		Image json.RawMessage `json:"image"`
	}
	if json.Unmarshal(detail, &d) != nil || len(d.Image) == 0 {
		return "", false
	}
	var path string
	if json.Unmarshal(d.Image, &path) != nil {
		var obj struct {
			URL string `json:"url"`
		}
		if json.Unmarshal(d.Image, &obj) != nil {
			return "", false
		}
		path = obj.URL
	}
	if !strings.HasPrefix(path, "/media/") {
		return "", false
	}
	return path, true
}

// scenarioFDs is how many file descriptors the phase needs in this process: per user a
// connection, a second with -read-addrs, and its stream, plus a few for the rest.
func scenarioFDs(cfg config) uint64 {
	per := uint64(2)
	if len(cfg.readAddrs) > 0 {
		per = 3
	}
	return uint64(cfg.users)*per + 64
}

// parseScenarioFlags checks the scenario's flags and parses its lists.
func parseScenarioFlags(cfg *config) []string {
	var problems []string
	if cfg.users < 2 {
		problems = append(problems, "-users must be at least 2")
	}
	if cfg.instructors < 1 || cfg.instructors >= cfg.users {
		problems = append(problems, "-instructors must be from 1 to -users - 1")
	}
	if cfg.scenarioCourses < 1 || cfg.scenarioModules < 1 {
		problems = append(problems, "-scenario-courses and -scenario-modules must be at least 1")
	}
	if cfg.scenarioCourses < cfg.instructors {
		problems = append(problems, "-scenario-courses must be at least -instructors: each instructor watches a course of its own")
	}
	if cfg.think <= 0 {
		problems = append(problems, "-think must be positive")
	}
	if cfg.readAddrsRaw != "" {
		for a := range strings.SplitSeq(cfg.readAddrsRaw, ",") {
			a = strings.TrimRight(strings.TrimSpace(a), "/")
			if u, err := url.Parse(a); err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" {
				problems = append(problems, fmt.Sprintf("-read-addrs: %q: want http://host:port", a))
				continue
			}
			cfg.readAddrs = append(cfg.readAddrs, a)
		}
	}
	if cfg.serverPIDsRaw != "" {
		for p := range strings.SplitSeq(cfg.serverPIDsRaw, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid < 1 {
				problems = append(problems, fmt.Sprintf("-server-pids: %q is no process id", p))
				continue
			}
			cfg.serverPIDs = append(cfg.serverPIDs, pid)
		}
	}
	return problems
}

func addScenarioFlags(fs *flag.FlagSet, cfg *config) {
	fs.IntVar(&cfg.users, "users", 10000, "the scenario's virtual users, each with its own token, connection and live stream")
	fs.IntVar(&cfg.instructors, "instructors", 100, "of -users, how many are instructors, each watching a course of its own")
	fs.DurationVar(&cfg.think, "think", 4*time.Second, "the scenario's mean think time after each request, drawn from half to one and a half of it: the phase offers about -users/-think requests a second")
	fs.IntVar(&cfg.scenarioCourses, "scenario-courses", 200, "courses the scenario's setup creates, spread over the instructors")
	fs.IntVar(&cfg.scenarioModules, "scenario-modules", 5, "modules per course of the scenario")
	fs.StringVar(&cfg.readAddrsRaw, "read-addrs", "", "comma-separated base `URLs` of read processes: the scenario's users read and open their streams there (in turn), and send commands to -addr (default: everything to -addr)")
	fs.StringVar(&cfg.serverPIDsRaw, "server-pids", "", "comma-separated ids of the server processes, on this machine: the scenario reports their CPU and peak RSS from /proc too")
}
