package readapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections/cache"
)

// BenchmarkCourseReadWithToken reads one course's details as a learner through the
// authenticator, the router, the handler and the in-process cache, with the learner's bearer
// token on every request, as a browser sends it:
//
//   - token_remembered: the verifier answers a token it verified before from memory (the
//     default);
//   - token_checked_each_time: every request parses the token and checks its signature.
//
// Compare the two of one run: go test -run '^$' -bench CourseReadWithToken -count 3 ./readapi/
func BenchmarkCourseReadWithToken(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef-benchmark")
	token, err := auth.Mint(key, auth.Claims{Subject: "ada", Role: domain.Learner, TTL: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name     string
		verified int
	}{{"token_remembered", 0}, {"token_checked_each_time", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := auth.NewVerifier(key, auth.Options{VerifiedTokens: bc.verified})
			if err != nil {
				b.Fatal(err)
			}
			authn, err := auth.NewAuthenticator(v, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			r := newBenchReader(b, cache.NewMemory(1024))
			router := chi.NewRouter()
			router.Use(authn.Middleware)
			router.Mount("/", r.router)
			req := httptest.NewRequest(http.MethodGet, "/v1/courses/go", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				router.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET /v1/courses/go: %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
