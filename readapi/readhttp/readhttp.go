// Package readhttp holds the HTTP conventions every read route follows: a reply with its strong
// validator and 304 on a match, cache headers, strict query parameters, pages, and the wait for
// minPosition that lets a client read its own writes.
package readhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
)

// Reply is a successful read: its body, its strong validator and whether it is private.
type Reply struct {
	Body    []byte
	ETag    string
	Private bool
}

// Handler adapts a read that returns a Reply or an error. It answers 304 when If-None-Match
// matches the reply's ETag, and a problem for the error, with Retry-After on a 503.
func Handler(log *slog.Logger, fn func(r *http.Request) (Reply, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rep, err := fn(r)
		if err != nil {
			var pe *problem.Error
			if errors.As(err, &pe) && pe.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			problem.Write(w, r, log, err)
			return
		}
		h := w.Header()
		h.Set("ETag", rep.ETag)
		if rep.Private {
			h.Set("Cache-Control", "private, no-cache")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if match := r.Header.Get("If-None-Match"); match != "" && ETagMatches(match, rep.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		w.Write(rep.Body)
	}
}

// ETagMatches compares If-None-Match weakly, as RFC 9110 asks: W/"7" matches "7".
func ETagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		if t = strings.TrimPrefix(strings.TrimSpace(t), "W/"); t == etag || t == "*" {
			return true
		}
	}
	return false
}

// NotFound is the 404 of a read: what names the missing thing.
func NotFound(what string) error { return problem.New(http.StatusNotFound, "", what+" not found") }

// OnlyParams refuses any query parameter but allowed.
func OnlyParams(r *http.Request, allowed ...string) error {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) {
			return problem.New(http.StatusBadRequest, name, "unknown query parameter")
		}
	}
	return nil
}

// MaxLimit is the largest page a listing answers.
const MaxLimit = 100

// Limit reads the limit parameter of a listing: 1 to MaxLimit, 20 when absent.
func Limit(r *http.Request) (int, error) {
	raw := r.URL.Query().Get("limit")
	if raw == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, problem.New(http.StatusBadRequest, "limit", fmt.Sprintf("must be an integer from 1 to %d", MaxLimit))
	}
	return n, nil
}

// Page is one page of a listing. NextCursor is always there, null on the last page, so that a
// client tells the last page from a field it did not know.
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

// Next sets the cursor of the next page.
func (p *Page[T]) Next(cursor string) { p.NextCursor = &cursor }

// Positions tells how far projections have come and waits for them.
type Positions interface {
	Wait(ctx context.Context, pos uint64, projections ...string) error
}

// Consistency honours the minPosition parameter: a read waits, at most Wait, until the
// projections behind it have reached the position the client names.
type Consistency struct {
	Positions Positions
	Wait      time.Duration
	// Waits, if not nil, measures the waits.
	Waits *WaitMetrics
}

// WaitMetrics measures the reads that waited for their minPosition: how long, and whether the
// read models reached it in time.
type WaitMetrics struct{ seconds *prometheus.HistogramVec }

// NewWaitMetrics registers the wait metrics in reg; the APIs of one process share them.
func NewWaitMetrics(reg prometheus.Registerer) (*WaitMetrics, error) {
	m := &WaitMetrics{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "read",
		Name: "min_position_wait_seconds", Help: "Time reads waited for their minPosition, by outcome: reached, or timeout (answered 503).",
		Buckets: observe.LatencyBuckets}, []string{"outcome"})}
	if err := reg.Register(m.seconds); err != nil {
		return nil, err
	}
	for _, o := range []string{"reached", "timeout"} {
		m.seconds.WithLabelValues(o)
	}
	return m, nil
}

// WaitFor waits for the projections behind a route to reach the request's minPosition, if it
// names one, and answers 503 past the wait.
func (c Consistency) WaitFor(r *http.Request, projections ...string) error {
	raw := r.URL.Query().Get("minPosition")
	if raw == "" {
		return nil
	}
	pos, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return problem.New(http.StatusBadRequest, "minPosition", "must be a non-negative integer")
	}
	return c.WaitAt(r.Context(), pos, projections...)
}

// WaitAt waits, bounded, until projections have reached pos (0 waits for nothing), and answers
// 503 when they do not in time: WaitFor for a minPosition that came some other way than the
// query string (a GraphQL argument).
func (c Consistency) WaitAt(ctx context.Context, pos uint64, projections ...string) error {
	if pos == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	start := time.Now()
	err := c.Positions.Wait(ctx, pos, projections...)
	if c.Waits != nil {
		outcome := "reached"
		if err != nil {
			outcome = "timeout"
		}
		c.Waits.seconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return problem.New(http.StatusServiceUnavailable, "minPosition",
			fmt.Sprintf("the read model has not reached position %d yet; retry shortly", pos))
	}
	return nil
}
