// Package jobsapi serves the job queue's operations over HTTP, under /v1/admin/jobs: list,
// retry and cancel, for `edutrack jobs`.
package jobsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/reactors"
)

// Jobs is what the routes need of the job queue.
type Jobs interface {
	List(ctx context.Context, f reactors.JobFilter) ([]reactors.Job, error)
	Retry(ctx context.Context, id int64) (reactors.Job, error)
	Cancel(ctx context.Context, id int64) (reactors.Job, error)
}

// Routes mounts the operations of jobs on router. The caller restricts them to admins.
func Routes(router chi.Router, jobs Jobs, log *slog.Logger) {
	handle := func(fn func(req *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			body, err := fn(req)
			if err != nil {
				problem.Write(w, req, log, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(body)
		}
	}
	router.Get("/v1/admin/jobs", handle(func(req *http.Request) (any, error) {
		f, err := filter(req)
		if err != nil {
			return nil, err
		}
		items, err := jobs.List(req.Context(), f)
		return map[string]any{"items": items}, err
	}))
	router.Post("/v1/admin/jobs/{id}/retry", handle(func(req *http.Request) (any, error) {
		return act(req, jobs.Retry)
	}))
	router.Post("/v1/admin/jobs/{id}/cancel", handle(func(req *http.Request) (any, error) {
		return act(req, jobs.Cancel)
	}))
}

// act runs op on the job the route names.
func act(req *http.Request, op func(ctx context.Context, id int64) (reactors.Job, error)) (any, error) {
	if err := problem.NoBody(req); err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(chi.URLParam(req, "id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, problem.New(http.StatusBadRequest, "id", "must be a job's id, a positive integer")
	}
	return op(req.Context(), id)
}

// filter reads a listing's query: state, kind and limit, and nothing else, so that a misspelt
// parameter is not taken for "every job".
func filter(req *http.Request) (reactors.JobFilter, error) {
	qs := req.URL.Query()
	for name, values := range qs {
		if !slices.Contains([]string{"state", "kind", "limit"}, name) {
			return reactors.JobFilter{}, problem.New(http.StatusBadRequest, name, "is not a parameter of this route; it takes state, kind and limit")
		}
		if len(values) > 1 {
			return reactors.JobFilter{}, problem.New(http.StatusBadRequest, name, "must be given once")
		}
	}
	f := reactors.JobFilter{State: qs.Get("state"), Kind: qs.Get("kind")}
	if f.State != "" && !slices.Contains(reactors.JobStates(), f.State) {
		return f, problem.New(http.StatusBadRequest, "state", "must be one of "+strings.Join(reactors.JobStates(), ", "))
	}
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > reactors.MaxJobs {
			return f, problem.New(http.StatusBadRequest, "limit", fmt.Sprintf("must be an integer from 1 to %d", reactors.MaxJobs))
		}
		f.Limit = n
	}
	return f, nil
}
