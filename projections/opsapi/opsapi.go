// Package opsapi serves the projection operations over HTTP, under /v1/admin/projections: list,
// state, rebuild, dead letters, skip and retry, for the ops page and `edutrack projections`.
package opsapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
)

// Operations is what the routes need of the projections runner.
type Operations interface {
	List(ctx context.Context) ([]projections.State, error)
	State(ctx context.Context, name string) (projections.State, error)
	Rebuild(ctx context.Context, name string) (projections.State, error)
	DeadLetters(ctx context.Context, name string) ([]projections.DeadLetter, error)
	Skip(ctx context.Context, name string, position uint64, reason string) error
	Retry(ctx context.Context, name string) error
}

// Routes mounts the operations of r on router. The caller restricts them to admins.
func Routes(router chi.Router, r Operations, log *slog.Logger) {
	handle := func(fn func(w http.ResponseWriter, req *http.Request) (int, any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			status, body, err := fn(w, req)
			if err != nil {
				problem.Write(w, req, log, adminError(err))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(body)
		}
	}
	router.Route("/v1/admin/projections", func(router chi.Router) {
		router.Get("/", handle(func(_ http.ResponseWriter, req *http.Request) (int, any, error) {
			states, err := r.List(req.Context())
			return http.StatusOK, map[string]any{"items": states}, err
		}))
		router.Get("/{name}", handle(func(_ http.ResponseWriter, req *http.Request) (int, any, error) {
			st, err := r.State(req.Context(), chi.URLParam(req, "name"))
			return http.StatusOK, st, err
		}))
		router.Post("/{name}/rebuild", handle(func(w http.ResponseWriter, req *http.Request) (int, any, error) {
			if err := problem.NoBody(req); err != nil {
				return 0, nil, err
			}
			st, err := r.Rebuild(req.Context(), chi.URLParam(req, "name"))
			w.Header().Set("Location", "/v1/admin/projections/"+chi.URLParam(req, "name"))
			return http.StatusAccepted, st, err
		}))
		router.Get("/{name}/dead-letters", handle(func(_ http.ResponseWriter, req *http.Request) (int, any, error) {
			letters, err := r.DeadLetters(req.Context(), chi.URLParam(req, "name"))
			return http.StatusOK, map[string]any{"items": letters}, err
		}))
		router.Post("/{name}/skip", handle(func(w http.ResponseWriter, req *http.Request) (int, any, error) {
			var body struct {
				Position *uint64 `json:"position"`
				Reason   string  `json:"reason"`
			}
			if err := problem.DecodeJSON(w, req, &body, 64<<10); err != nil {
				return 0, nil, err
			}
			if body.Position == nil || *body.Position == 0 {
				return 0, nil, problem.New(http.StatusBadRequest, "position", "must be the position of the event the projection is stalled at")
			}
			if len(body.Reason) > 1000 {
				return 0, nil, problem.New(http.StatusBadRequest, "reason", "must be at most 1000 bytes")
			}
			name := chi.URLParam(req, "name")
			if err := r.Skip(req.Context(), name, *body.Position, body.Reason); err != nil {
				return 0, nil, err
			}
			st, err := r.State(req.Context(), name)
			return http.StatusOK, st, err
		}))
		router.Post("/{name}/retry", handle(func(_ http.ResponseWriter, req *http.Request) (int, any, error) {
			if err := problem.NoBody(req); err != nil {
				return 0, nil, err
			}
			name := chi.URLParam(req, "name")
			if err := r.Retry(req.Context(), name); err != nil {
				return 0, nil, err
			}
			st, err := r.State(req.Context(), name)
			return http.StatusAccepted, st, err
		}))
	})
}

func adminError(err error) error {
	switch {
	case errors.Is(err, projections.ErrUnknownProjection):
		return problem.New(http.StatusNotFound, "", err.Error())
	case errors.Is(err, projections.ErrRebuilding), errors.Is(err, projections.ErrNotStalled):
		return problem.New(http.StatusConflict, "", err.Error())
	case errors.Is(err, projections.ErrNotRunning):
		return problem.New(http.StatusServiceUnavailable, "", err.Error())
	}
	return err
}
