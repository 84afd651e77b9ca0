package observe

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
)

// MaxRequestIDLen bounds the X-Request-Id a client may send: it lands in event metadata, forever.
const MaxRequestIDLen = 128

// request is what the access line reports of one request; handlers deeper in the chain fill in
// what only they learn, such as who the caller is.
type request struct {
	id     string
	userID string
}

type requestKey struct{}

// SetUser records the caller of the request in ctx for its access line. The authenticator calls
// it; it does nothing outside Requests.
func SetUser(ctx context.Context, userID string) {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		r.userID = userID
	}
}

// RequestID returns the id Requests gave the request in ctx, or "".
func RequestID(ctx context.Context) string {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		return r.id
	}
	return ""
}

// Requests is middleware that gives every request an id and writes one access line for it.
// The id is the client's X-Request-Id, or a new one when it sent none; it goes into the
// request's header for the handlers (commands record it in their events), and back in the
// answer's. An X-Request-Id that is too long or not printable ASCII is refused with bad, whose
// answer carries a fresh id. The access line holds the method, the route's pattern (never the
// path or the query, which may carry personal data), the status, the duration, the bytes sent,
// the request id and the caller's user id: no names, emails or tokens.
func Requests(log *slog.Logger, bad http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			handler := next
			if !usableID(id) {
				if id != "" {
					handler = bad
				}
				id = uuid.NewString()
				r.Header.Set("X-Request-Id", id)
			}
			w.Header().Set("X-Request-Id", id)
			info := &request{id: id}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			handler.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), requestKey{}, info)))
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", methodLabel(r.Method)),
				slog.String("route", route), slog.Int("status", status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.Int("bytes", ww.BytesWritten()), slog.String("request_id", id), slog.String("user_id", info.userID))
		})
	}
}

// usableID accepts 1 to MaxRequestIDLen printable ASCII characters.
func usableID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
