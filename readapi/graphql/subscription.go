package graphql

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// WebSocketRoutes mounts the subscriptions' endpoint, GET /graphql/ws (graphql-transport-ws).
// A browser cannot set a WebSocket's headers, so it is mounted outside the authenticator: the
// token comes in connection_init's payload ({"Authorization": "Bearer ..."}), and a connection
// without a valid one is closed before any operation.
func (s *Server) WebSocketRoutes(r chi.Router) {
	ws := handler.New(exec.NewExecutableSchema(s.config()))
	ws.AddTransport(transport.Websocket{KeepAlivePingInterval: 10 * time.Second, InitTimeout: 10 * time.Second, InitFunc: s.initSocket})
	s.configure(ws)
	h := s.withRequest(ws)
	r.Get("/graphql/ws", func(w http.ResponseWriter, r *http.Request) {
		// The server's read and write timeouts would end the socket half a minute in: they
		// stay on the connection it takes over. The keep-alive pings find a dead peer instead.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(w, r)
	})
}

// initSocket admits a connection whose connection_init carries a valid token, with its caller
// in the context of every operation it sends.
func (s *Server) initSocket(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	if s.opts.Authenticate == nil {
		return ctx, nil, errors.New("this process cannot verify tokens")
	}
	scheme, token, _ := strings.Cut(payload.Authorization(), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return ctx, nil, errors.New("connection_init needs {\"Authorization\": \"Bearer <token>\"}")
	}
	a, err := s.opts.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		return ctx, nil, err
	}
	return auth.NewContext(ctx, a), nil, nil
}

func (r *resolver) Subscription() exec.SubscriptionResolver { return subscriptionResolver{r.s} }

type subscriptionResolver struct{ s *Server }

// follow sends what load answers now, then again after each batch of the feed that changed
// document id of coll (or asks every client to read again), until ctx ends. A load that fails
// ends the subscription.
func follow[T any](s *Server, ctx context.Context, projection, coll, id string, load func(context.Context) (T, error)) (<-chan T, error) {
	if s.opts.Feed == nil {
		return nil, problem.New(http.StatusServiceUnavailable, "", "this process has no change feed")
	}
	batches, err := s.opts.Feed.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	first, err := load(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan T, 1)
	out <- first
	go func() {
		defer close(out)
		for b := range batches {
			if !touches(b, projection, coll, id) {
				continue
			}
			v, err := load(ctx)
			if err != nil {
				return
			}
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func touches(b changes.Batch, projection, coll, id string) bool {
	if b.Resync {
		return b.Projection == "" || b.Projection == projection
	}
	for _, c := range b.Changes {
		if c.Coll == coll && c.ID == id {
			return true
		}
	}
	return false
}

func (r subscriptionResolver) CourseChanged(ctx context.Context, id string) (<-chan *model.Course, error) {
	a, err := caller(ctx, access.Readers)
	if err != nil {
		return nil, err
	}
	return follow(r.s, ctx, documents.CoursesProjection, documents.CourseDetails, id, func(ctx context.Context) (*model.Course, error) {
		return r.s.courseNow(ctx, a, id)
	})
}

// courseNow reads course id as a reader sees it, through the cache but never the request's
// loader, which would answer what it read at the start.
func (s *Server) courseNow(ctx context.Context, a domain.Actor, id string) (*model.Course, error) {
	d, err := decodeLoad[documents.CourseDetail](ctx, s, documents.CoursesProjection, documents.CourseDetails, id, "course")
	if err != nil {
		return nil, err
	}
	c := model.CourseFromDetail(d)
	return c, c.Access.MayView(a)
}

func (r subscriptionResolver) LearnerChanged(ctx context.Context, id string, reason *string) (<-chan *model.Learner, error) {
	a, err := caller(ctx, access.LearnerRecords)
	if err != nil {
		return nil, err
	}
	read, err := access.ReadLearnerAs(a, id, learner.RecordDashboard, disclosureRequest(ctx, reason), r.s.opts.Disclosures)
	if err != nil {
		return nil, err
	}
	return follow(r.s, ctx, documents.LearnersProjection, documents.Dashboards, id, func(ctx context.Context) (*model.Learner, error) {
		return r.s.learner(ctx, id, read) // each answer is a disclosure, recorded before it leaves
	})
}
