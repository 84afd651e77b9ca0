package main

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// readSeed is the second half of every read client's random source; the first is the client's
// index, so each client draws its own sequence and a rerun draws the same ones.
const readSeed = 0x7265616473 // "reads"

// readClient GETs course details and dashboards, each id drawn from a Zipf distribution over all
// courses or all learners, so a few documents are hot and most are cold, as on a real site.
type readClient struct {
	api            *api
	rng            *rand.Rand
	mix            float64 // share of course-detail reads
	courses        *rand.Zipf
	learners       *rand.Zipf
	coursePaths    []string // /v1/courses/{id}, by Zipf rank
	dashboardPaths []string // /v1/learners/{id}/dashboard, by Zipf rank
	// dashboardAPIs are the api as each dashboard's learner, by Zipf rank: a learner reads its
	// own, which records no disclosure. Course details go as the api.
	dashboardAPIs []*api
}

func readClients(base *api, fx fixture, n int, mix, s float64, tok *tokens) []client {
	var coursePaths, dashPaths []string
	var dashAPIs []*api
	for _, c := range fx.courses {
		coursePaths = append(coursePaths, "/v1/courses/"+c)
	}
	for _, l := range fx.allLearners() {
		dashPaths = append(dashPaths, "/v1/learners/"+l+"/dashboard")
		dashAPIs = append(dashAPIs, tok.learner(base, l))
	}
	clients := make([]client, n)
	for i := range clients {
		rng := rand.New(rand.NewPCG(uint64(i), readSeed))
		clients[i] = &readClient{
			api:            base,
			rng:            rng,
			mix:            mix,
			courses:        rand.NewZipf(rng, s, 1, uint64(len(coursePaths)-1)),
			learners:       rand.NewZipf(rng, s, 1, uint64(len(dashPaths)-1)),
			coursePaths:    coursePaths,
			dashboardPaths: dashPaths,
			dashboardAPIs:  dashAPIs,
		}
		if tok != nil {
			// Each client reads course details as a learner of its own.
			clients[i].(*readClient).api = tok.learner(base, fx.learners[i%len(fx.learners)][0])
		}
	}
	return clients
}

// path draws the next read, and the api to send it as.
func (c *readClient) path() (op, string, *api) {
	if c.rng.Float64() < c.mix {
		return opCourseDetail, c.coursePaths[c.courses.Uint64()], c.api
	}
	i := c.learners.Uint64()
	return opDashboard, c.dashboardPaths[i], c.dashboardAPIs[i]
}

func (c *readClient) send(ctx context.Context) (op, int64, error) {
	o, path, as := c.path()
	n, err := as.read(ctx, path)
	return o, n, err
}

// staticClient GETs one URL of another server, such as nginx serving a saved course detail: the
// rate a plain file server reaches for the same bytes on the same machine.
type staticClient struct {
	api *api
	url string
}

func staticClients(api *api, url string, n int) []client {
	clients := make([]client, n)
	for i := range clients {
		clients[i] = staticClient{api: api, url: url}
	}
	return clients
}

func (s staticClient) send(ctx context.Context) (op, int64, error) {
	n, err := s.api.read(ctx, s.url)
	return opStatic, n, err
}

// The read API's cache counters, labelled by read model.
const (
	cacheHitsMetric   = "edutrack_cache_hits_total"
	cacheMissesMetric = "edutrack_cache_misses_total"
)

// cacheCount is the read API's cache counters at one moment, summed over read models.
type cacheCount struct{ hits, misses float64 }

// cacheWindow is the cache counters at both ends of the reads phase's measured time.
type cacheWindow struct {
	before, after cacheCount
	err           error // why the counters could not be read
}

// cacheCounters reads the cache counters from the server's /metrics. A counter the server has
// not incremented yet is absent, and counts as 0.
func cacheCounters(ctx context.Context, api *api) (cacheCount, error) {
	body, err := api.fetch(ctx, "/metrics")
	if err != nil {
		return cacheCount{}, err
	}
	return parseCacheCounters(string(body))
}

// parseCacheCounters sums the cache counters in Prometheus text exposition format.
func parseCacheCounters(text string) (cacheCount, error) {
	var c cacheCount
	err := eachSample(text, func(name, _ string, v float64) error {
		switch name {
		case cacheHitsMetric:
			c.hits += v
		case cacheMissesMetric:
			c.misses += v
		default:
			return nil
		}
		if v < 0 {
			return fmt.Errorf("metrics: %s is negative: %g", name, v)
		}
		return nil
	})
	if err != nil {
		return cacheCount{}, err
	}
	return c, nil
}
