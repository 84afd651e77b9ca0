// Package graphql serves the read models as one GraphQL endpoint (POST /graphql, GET for
// persisted queries), beside the REST routes and under their rules: the same token, roles and
// ownership (readapi/access), the same minPosition wait, the same cache. Each request has its
// own loaders, so a screen's lookups of one read model are one read of the store. The schema is
// schema.graphql; gqlgen writes exec/ and model/models_gen.go from it (gqlgen.yml says how).
package graphql

//go:generate go run github.com/99designs/gqlgen generate --config gqlgen.yml

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/history"
)

//go:embed schema.graphql
var schema []byte

// Options tune the endpoint.
type Options struct {
	// Disclosures records reads of a learner's records by someone else, as REST's do.
	Disclosures access.Disclosures
	// History, if not nil, answers history(asOf); without it (a process without the event log)
	// the field answers UNAVAILABLE.
	History *history.API
	// Introspection lets every caller introspect the schema; without it only admins may.
	Introspection bool
	// Commands, if not nil, runs the mutations' commands; without it (a process that cannot
	// append) mutations answer UNAVAILABLE.
	Commands Commands
	// Feed, if not nil, feeds the subscriptions: the read models' change feed.
	Feed changes.Feed
	// Authenticate verifies the token a WebSocket sends in connection_init.
	Authenticate func(ctx context.Context, token string) (domain.Actor, error)
	// SharedMaxAge is how long the answer of a query made only of fields that are the same for
	// every reader (a catalog page) is served again after the catalog has changed: the REST
	// catalog's EDUTRACK_CATALOG_MAX_AGE. Zero serves it again only while the catalog has not
	// changed. A query that passes minPosition is always answered as of that position.
	SharedMaxAge time.Duration
	// MaxUploadBytes, if above 0, accepts multipart requests (the GraphQL multipart request
	// spec) for uploadCourseImage, with files of at most this many bytes: the REST upload's
	// cap. Without it such requests are refused.
	MaxUploadBytes int64
}

// Server is the GraphQL endpoint.
type Server struct {
	api     *readapi.API
	log     *slog.Logger
	opts    Options
	gql     *handler.Server
	metrics *metrics
	shared  *sharedAnswers
}

// New returns the endpoint over the REST layer's reads.
func New(api *readapi.API, reg prometheus.Registerer, log *slog.Logger, opts Options) (*Server, error) {
	if api == nil || reg == nil || log == nil {
		return nil, errors.New("graphql: every dependency is required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{api: api, log: log, opts: opts, metrics: m}
	if s.shared, err = newSharedAnswers(s, reg); err != nil {
		return nil, err
	}
	s.gql = s.handler()
	return s, nil
}

// Routes mounts the endpoint on r, behind an authenticator that puts the caller in each
// request's context. Which fields a caller may read each resolver decides, as the REST handlers
// do.
func (s *Server) Routes(r chi.Router) {
	h := noStore(s.guardUploads(refuseBatches(s.serveKept(s.withRequest(s.gql)))))
	r.Post("/graphql", h.ServeHTTP)
	r.Get("/graphql", h.ServeHTTP)
}

// ServeSchema answers the schema. It is public, like the OpenAPI description.
func ServeSchema(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(schema)
}

func (s *Server) handler() *handler.Server {
	h := handler.New(exec.NewExecutableSchema(s.config()))
	h.AddTransport(transport.GET{})
	h.AddTransport(transport.POST{})
	if s.opts.MaxUploadBytes > 0 {
		// Held in memory, as the REST upload holds its body: the cap bounds both.
		h.AddTransport(transport.MultipartForm{MaxUploadSize: s.maxMultipart(), MaxMemory: s.maxMultipart() + 1})
	}
	s.configure(h)
	return h
}

func (s *Server) config() exec.Config {
	cfg := exec.Config{Resolvers: &resolver{s: s}}
	complexity(&cfg.Complexity)
	return cfg
}
