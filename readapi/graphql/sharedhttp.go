package graphql

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/lru"

	"github.com/edutrack/edutrack/internal/auth"
)

// A shared answer is also kept as the bytes that answered it, by the request's bytes: the same
// body, from a caller of the same role accepting the same types, asks the same query, so while
// its answer is fresh it is written as it was, without parsing the request or marshalling the
// answer again (about a third of a kept answer's cost, and REST's kept catalog pages are written
// the same way). Only POSTs without an Idempotency-Key are looked up; the bytes are kept only
// after sharedAnswers decided the query was shared and answered it without error.

// sharedBody is what the HTTP layer learns of a request's query from sharedAnswers: the answer
// the request was given, if it was a shared one.
type sharedBody struct {
	answer    *sharedAnswer
	operation string
}

type sharedBodyKey struct{}

func sharedBodyOf(ctx context.Context) *sharedBody {
	b, _ := ctx.Value(sharedBodyKey{}).(*sharedBody)
	return b
}

func (b *sharedBody) found(e *sharedAnswer, operation string) {
	if b != nil {
		b.answer, b.operation = e, operation
	}
}

// keptBytes are a shared answer as written.
type keptBytes struct {
	answer      *sharedAnswer
	operation   string
	contentType string
	body        []byte
}

// recorder keeps a copy of what a handler writes, for a shared answer to be kept as bytes.
type recorder struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool // the answer is larger than keptBodyMax: not kept
}

// keptBodyMax bounds an answer kept as bytes (a page of 100 courses is about 40 KB).
const keptBodyMax = 256 << 10

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.overflow = r.overflow || r.body.Len()+len(p) > keptBodyMax; !r.overflow {
		r.body.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

// serveKept answers a POST whose bytes were answered with a fresh shared answer with the same
// bytes, and records the answer of the others for the next.
func (s *Server) serveKept(next http.Handler) http.Handler {
	kept := lru.New[*keptBytes](SharedAnswerEntries)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := auth.FromContext(r.Context())
		if r.Method != http.MethodPost || !ok || r.Header.Get("Idempotency-Key") != "" || r.ContentLength < 0 || r.ContentLength > MaxBodyBytes {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		if err != nil || len(body) > MaxBodyBytes {
			next.ServeHTTP(w, r)
			return
		}
		key := string(a.Role) + "\x00" + r.Header.Get("Content-Type") + "\x00" + r.Header.Get("Accept") + "\x00" + string(body)
		now := s.shared.now()
		if k, hit := kept.Get(r.Context(), key); hit && s.shared.fresh(k.answer, s.shared.position(), now) {
			s.shared.outcomes.WithLabelValues("hit_bytes").Inc()
			w.Header().Set("Content-Type", k.contentType)
			w.Write(k.body)
			s.metrics.operations.WithLabelValues(k.operation, "ok").Inc()
			s.metrics.seconds.WithLabelValues(k.operation).Observe(time.Since(now).Seconds())
			return
		}
		found := &sharedBody{}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), sharedBodyKey{}, found)))
		if found.answer != nil && rec.status == http.StatusOK && !rec.overflow {
			kept.Add(r.Context(), key, &keptBytes{answer: found.answer, operation: found.operation,
				contentType: w.Header().Get("Content-Type"), body: bytes.Clone(rec.body.Bytes())})
		}
	})
}
