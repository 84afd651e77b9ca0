package graphql

import (
	"context"
	"net/http"

	"github.com/edutrack/edutrack/readapi/access"
)

// requestKey holds what each request's resolvers share: its loaders and its ids.
type requestKey struct{}

type request struct {
	loaders *loaders
	// ids are the request's, which a disclosure records.
	id, correlationID string
	// idempotencyKey is the request's Idempotency-Key header, which binds its one mutation.
	idempotencyKey string
}

// withRequest gives each request its own loaders: what one request loaded is never another's,
// so no caller ever reads what another's access allowed.
func (s *Server) withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &request{loaders: s.newLoaders(), id: r.Header.Get("X-Request-Id"), correlationID: r.Header.Get("X-Correlation-Id"),
			idempotencyKey: r.Header.Get("Idempotency-Key")}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, req)))
	})
}

func requestOf(ctx context.Context) *request {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		return r
	}
	return &request{}
}

// disclosureRequest is what a disclosure records of the request of ctx.
func disclosureRequest(ctx context.Context, reason *string) access.Request {
	r := requestOf(ctx)
	out := access.Request{ID: r.id, CorrelationID: r.correlationID}
	if reason != nil {
		out.Reason = *reason
	}
	return out
}

// noStore says that no cache on the way keeps an answer: one may hold a learner's records or a
// download link signed for its caller, as REST's private routes say. Refusals say it too.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
