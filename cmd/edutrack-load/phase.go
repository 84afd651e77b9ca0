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
	opCount
)

func (o op) String() string {
	return [...]string{"healthz", "EnrollStudent", "CompleteModule"}[o]
}

// A client is one of a phase's concurrent callers. It sends one request at a time; the phase
// times each call.
type client interface {
	send(ctx context.Context) (op, error)
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
	statuses  map[int]int64 // non-2xx responses by status code
	first     error         // the first error seen, to show what went wrong
	latency   *hdrhistogram.Histogram
}

func newResult() *result {
	return &result{statuses: map[int]int64{}, latency: newHistogram()}
}

func (r *result) record(o op, took time.Duration, err error) {
	r.requests++
	r.ops[o]++
	if err == nil {
		// Only successes are timed: a fast rejection would otherwise lower the percentiles.
		_ = r.latency.RecordValue(min(max(took.Microseconds(), 1), maxLatency))
		return
	}
	r.errors++
	if r.first == nil {
		r.first = err
	}
	if se, ok := errors.AsType[*statusError](err); ok {
		r.statuses[se.code]++
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
// requests in flight have. It fails only if ctx ends first.
func runPhase(ctx context.Context, clients []client, warmup, duration time.Duration) (*result, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)

	perClient := make([]*result, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		perClient[i] = newResult()
		wg.Go(func() { drive(ctx, c, perClient[i], measureFrom, end) })
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
		o, err := c.send(ctx)
		took := time.Since(started)
		if started.Before(measureFrom) || ctx.Err() != nil {
			continue
		}
		r.record(o, took, err)
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

func (h healthzClient) send(ctx context.Context) (op, error) {
	return opHealthz, h.api.get(ctx, "/healthz")
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
// appends events. Once it has walked all its pairs it starts over, and its commands change
// nothing any more.
type writeClient struct {
	api         *api
	courses     []string
	modules     []string
	enrollBody  [][]byte // per learner
	learnerPath []string // per learner: /v1/learners/{id}/courses/
	pairs       []pair
	next        int // index into pairs
	step        int // 0 enrolls; k > 0 completes modules[k-1]
	wrapped     bool
}

func writeClients(api *api, fx fixture) []client {
	clients := make([]client, len(fx.learners))
	for i, own := range fx.learners {
		w := &writeClient{
			api:     api,
			courses: fx.courses,
			modules: fx.modules,
			pairs:   pairOrder(i, len(own), len(fx.courses)),
		}
		for _, l := range own {
			w.enrollBody = append(w.enrollBody, mustJSON(enrollment{LearnerID: l}))
			w.learnerPath = append(w.learnerPath, "/v1/learners/"+l+"/courses/")
		}
		clients[i] = w
	}
	return clients
}

// capacity is how many commands a write client sends before it wraps around.
func capacity(fx fixture) int {
	return len(fx.learners[0]) * len(fx.courses) * (len(fx.modules) + 1)
}

func (w *writeClient) send(ctx context.Context) (op, error) {
	p := w.pairs[w.next]
	course := w.courses[p.course]
	var o op
	var err error
	if w.step == 0 {
		o, err = opEnroll, w.api.post(ctx, "/v1/courses/"+course+"/enrollments", w.enrollBody[p.learner])
	} else {
		o, err = opComplete, w.api.post(ctx, w.learnerPath[p.learner]+course+"/modules/"+w.modules[w.step-1]+"/complete", nil)
	}

	// A failed command still moves on: the error is counted, and retrying would measure retries.
	w.step++
	if w.step > len(w.modules) {
		w.step = 0
		w.next++
		if w.next == len(w.pairs) {
			w.next = 0
			w.wrapped = true
		}
	}
	return o, err
}

func wrappedClients(clients []client) int {
	n := 0
	for _, c := range clients {
		if w, ok := c.(*writeClient); ok && w.wrapped {
			n++
		}
	}
	return n
}
