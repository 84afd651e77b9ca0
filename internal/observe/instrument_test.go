package observe_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/internal/observe"
)

// series counts the time series reg holds.
func series(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	return n
}

// A flood of requests with made-up methods and paths must not grow the metrics: every label
// takes its values from a set the server bounds, whatever the clients send.
func TestInstrumentKeepsLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	instrument, err := observe.Instrument(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(instrument)
	r.Get("/v1/courses/{id}", func(w http.ResponseWriter, _ *http.Request) {})
	r.Post("/v1/courses", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	send := func(method, path string) {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	// Every kind of answer once: a route, another method on it, an unknown path, an unknown
	// method, on a route and off it.
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW"} {
		send(m, "/v1/courses/go")
		send(m, "/v1/courses")
		send(m, "/nowhere")
	}
	before := series(t, reg)
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.IntN(26)]
		}
		return string(b)
	}
	for i := range 5000 {
		path := fmt.Sprintf("/%s/%d", strings.ToLower(word()), i)
		if i%3 == 0 {
			path = "/v1/courses/" + strings.ToLower(word())
		}
		send(word(), path)
	}
	if after := series(t, reg); after != before {
		t.Errorf("series grew from %d to %d under a flood of made-up methods and paths", before, after)
	}
}

// A request slower than the longest wait the server allows still falls in a bucket.
func TestLatencyBucketsReachTheLongestWait(t *testing.T) {
	if last := observe.LatencyBuckets[len(observe.LatencyBuckets)-1]; last < 10 {
		t.Errorf("the last latency bucket is %.1f s, below the 10 s request timeout", last)
	}
}
