package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// op is the kind of one request, counted separately so the report shows the mix.
type op int

const (
	opHealthz op = iota
	opEnroll
	opComplete
	opCourseDetail
	opDashboard
	opStatic
	opLive
	opScenario
	opCatalogREST
	opCatalogGraphQL
	opCount
)

func (o op) String() string {
	return [...]string{"healthz", "EnrollStudent", "CompleteModule", "course detail", "dashboard", "static", "live stream", "scenario", "catalog REST", "catalog GraphQL"}[o]
}

// A client is one of a phase's concurrent callers. It sends one request at a time; the phase
// times each call. send returns the kind of request, the size of the body answered if the phase
// counts it, and the request's error.
type client interface {
	send(ctx context.Context) (op, int64, error)
}

// maxLatency is the largest latency the histograms hold, in microseconds; slower requests are
// recorded as this. It is above requestTimeout, so only a broken clock reaches it.
const maxLatency = int64(2 * requestTimeout / time.Microsecond)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, maxLatency, 3) }

// result is what one phase measured, merged over its clients.
type result struct {
	elapsed   time.Duration // from the end of the warmup until the last request returned
	requests  int64
	ops       [opCount]int64
	errors    int64
	transport int64
	invalid   int64         // 2xx answers to a command without a log position
	statuses  map[int]int64 // non-2xx responses by status code
	bytes     int64         // body bytes of the successful responses
	first     error         // the first error seen, to show what went wrong
	latency   *hdrhistogram.Histogram
}

func newResult() *result {
	return &result{statuses: map[int]int64{}, latency: newHistogram()}
}

func (r *result) record(o op, took time.Duration, bytes int64, err error) {
	r.requests++
	r.ops[o]++
	if err == nil {
		// Only successes are timed: a fast rejection would otherwise lower the percentiles.
		_ = r.latency.RecordValue(min(max(took.Microseconds(), 1), maxLatency))
		r.bytes += bytes
		return
	}
	r.errors++
	if r.first == nil {
		r.first = err
	}
	if se, ok := errors.AsType[*statusError](err); ok {
		r.statuses[se.code]++
	} else if _, ok := errors.AsType[*answerError](err); ok {
		r.invalid++
	} else {
		r.transport++
	}
}

func (r *result) merge(from *result) {
	r.requests += from.requests
	for o, n := range from.ops {
		r.ops[o] += n
	}
	r.errors += from.errors
	r.transport += from.transport
	r.invalid += from.invalid
	r.bytes += from.bytes
	for code, n := range from.statuses {
		r.statuses[code] += n
	}
	if r.first == nil {
		r.first = from.first
	}
	r.latency.Merge(from.latency)
}

// runPhase runs the clients concurrently for warmup plus duration, recording the requests that
// start after the warmup. A client starts no request after that, and the phase returns when the
// requests in flight have. If measuring is not nil, it is called once as the measured time
// begins. runPhase fails only if ctx ends first.
func runPhase(ctx context.Context, clients []client, warmup, duration time.Duration, measuring func()) (*result, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	if measuring == nil {
		measuring = func() {}
	}
	if warmup <= 0 {
		// Before the clients start, so nothing measured happens before it.
		measuring()
	}

	perClient := make([]*result, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		perClient[i] = newResult()
		wg.Go(func() { drive(ctx, c, perClient[i], measureFrom, end) })
	}
	if warmup > 0 {
		t := time.NewTimer(time.Until(measureFrom))
		select {
		case <-t.C:
			measuring()
		case <-ctx.Done():
			t.Stop()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	total := newResult()
	total.elapsed = time.Since(measureFrom)
	for _, r := range perClient {
		total.merge(r)
	}
	return total, nil
}

func drive(ctx context.Context, c client, r *result, measureFrom, end time.Time) {
	for ctx.Err() == nil {
		started := time.Now()
		if !started.Before(end) {
			return
		}
		o, n, err := c.send(ctx)
		took := time.Since(started)
		if started.Before(measureFrom) || ctx.Err() != nil {
			continue
		}
		r.record(o, took, n, err)
	}
}

// healthzClient asks GET /healthz, the cheapest request the server answers, as the baseline the
// write rate is compared with.
type healthzClient struct{ api *api }

func healthzClients(api *api, n int) []client {
	clients := make([]client, n)
	for i := range clients {
		clients[i] = healthzClient{api: api}
	}
	return clients
}

func (h healthzClient) send(ctx context.Context) (op, int64, error) {
	return opHealthz, 0, h.api.get(ctx, "/healthz")
}

// pair is a learner's enrollment in a course: one EnrollStudent, then one CompleteModule per
// module in order.
type pair struct{ learner, course int }

// pairOrder returns every (learner, course) pair once, in an order fixed by client, so clients do
// not all enroll into the same course at the same moment, and a rerun sends the same sequence.
func pairOrder(client, learners, courses int) []pair {
	pairs := make([]pair, 0, learners*courses)
	for l := range learners {
		for c := range courses {
			pairs = append(pairs, pair{learner: l, course: c})
		}
	}
	rng := rand.New(rand.NewPCG(uint64(client), 0x6564757472616b)) // "edutrak"
	rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	return pairs
}

// writeClient enrolls its own learners into courses and completes every module, so each command
// appends events. It skips what the setup did, and once it has walked all its pairs it starts
// over, and its commands change nothing any more. The write and lag phases share the clients, so
// a lag phase after a write phase goes on where it stopped.
type writeClient struct {
	api           *api
	as            []*api // per learner: the api as that learner, who enrolls and completes for itself
	courses       []string
	modules       []string
	learners      []string
	enrollBody    [][]byte // per learner
	learnerPath   []string // per learner: /v1/learners/{id}/courses/
	dashboardPath []string // per learner: /v1/learners/{id}/dashboard?minPosition=
	pairs         []pair
	seeded        map[pair]int // the first step of the pairs the setup began: 1 + modules completed
	next          int          // index into pairs
	step          int          // 0 enrolls; k > 0 completes modules[k-1]
	wrapped       bool
	position      uint64 // the highest log position a command answered
}

func writeClients(api *api, fx fixture, tok *tokens) []*writeClient {
	clients := make([]*writeClient, len(fx.learners))
	for i, own := range fx.learners {
		w := &writeClient{
			api:      api,
			courses:  fx.courses,
			modules:  fx.modules,
			learners: own,
			pairs:    pairOrder(i, len(own), len(fx.courses)),
			seeded:   map[pair]int{},
		}
		for j, l := range own {
			w.as = append(w.as, tok.learner(api, l))
			w.enrollBody = append(w.enrollBody, mustJSON(enrollment{LearnerID: l}))
			w.learnerPath = append(w.learnerPath, "/v1/learners/"+l+"/courses/")
			w.dashboardPath = append(w.dashboardPath, "/v1/learners/"+l+"/dashboard?minPosition=")
			for _, s := range fx.seeds(i, j) {
				w.seeded[pair{learner: j, course: s.course}] = 1 + s.done
			}
		}
		w.step = w.seeded[w.pairs[0]]
		clients[i] = w
	}
	return clients
}

// capacity is how many commands a write client sends before it wraps around.
func capacity(fx fixture) int {
	n := len(fx.learners[0]) * len(fx.courses) * (len(fx.modules) + 1)
	for j := range fx.learners[0] {
		for _, s := range fx.seeds(0, j) {
			n -= 1 + s.done
		}
	}
	return n
}

func asClients(writers []*writeClient) []client {
	clients := make([]client, len(writers))
	for i, w := range writers {
		clients[i] = w
	}
	return clients
}

func (w *writeClient) send(ctx context.Context) (op, int64, error) {
	o, path, body, learner := w.command()
	pos, err := w.as[learner].command(ctx, path, body)
	w.position = max(w.position, pos)
	return o, 0, err
}

// command returns the client's next command, its path and body and the index of the learner it
// is about, and moves on: a failed command is counted, not retried, as retrying would measure
// retries.
func (w *writeClient) command() (o op, path string, body []byte, learner int) {
	p := w.pairs[w.next]
	course := w.courses[p.course]
	if w.step == 0 {
		o, path, body = opEnroll, "/v1/courses/"+course+"/enrollments", w.enrollBody[p.learner]
	} else {
		o, path = opComplete, w.learnerPath[p.learner]+course+"/modules/"+w.modules[w.step-1]+"/complete"
	}

	w.step++
	if w.step > len(w.modules) {
		w.next++
		if w.next == len(w.pairs) {
			w.next = 0
			w.wrapped = true
		}
		w.step = 0
		if !w.wrapped {
			// A seeded pair never has all its modules completed, so its first step is a command.
			w.step = w.seeded[w.pairs[w.next]]
		}
	}
	return o, path, body, p.learner
}

func wrappedClients(writers []*writeClient) int {
	n := 0
	for _, w := range writers {
		if w.wrapped {
			n++
		}
	}
	return n
}

// lastPosition is the highest log position the clients' commands answered.
func lastPosition(writers []*writeClient) uint64 {
	var pos uint64
	for _, w := range writers {
		pos = max(pos, w.position)
	}
	return pos
}
