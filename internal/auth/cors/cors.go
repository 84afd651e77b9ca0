// Package cors lets the browser frontends of named origins call the EduTrack APIs. It is off
// unless origins are configured.
package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	chicors "github.com/go-chi/cors"
)

// maxAge is how long, in seconds, a browser may reuse a preflight answer.
const maxAge = 600

// New returns middleware answering CORS for exactly the given origins ("https://school.example",
// scheme, host and port only). With no origins it returns middleware that adds nothing, so
// cross-origin reads stay blocked by the browser. Wildcards are refused: each origin that may
// send a learner's token is named.
func New(origins []string) (func(http.Handler) http.Handler, error) {
	if len(origins) == 0 {
		// Never hand go-chi/cors an empty list: it reads that as every origin.
		return func(next http.Handler) http.Handler { return next }, nil
	}
	for _, o := range origins {
		if err := checkOrigin(o); err != nil {
			return nil, err
		}
	}
	return chicors.Handler(chicors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete},
		// Last-Event-ID: a client other than EventSource (which sends it itself) resuming a live
		// stream.
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "Last-Event-ID", "X-Request-Id", "X-Correlation-Id"},
		ExposedHeaders: []string{"ETag", "Location", "Retry-After", "WWW-Authenticate", "X-Request-Id"},
		// Tokens travel in the Authorization header, never in cookies, so the browser needs
		// no credentials mode, and a page of another origin gets nothing it did not already hold.
		AllowCredentials: false,
		MaxAge:           maxAge,
	}), nil
}

// checkOrigin accepts an origin as browsers send it: scheme://host[:port], nothing else.
func checkOrigin(o string) error {
	if strings.Contains(o, "*") {
		return fmt.Errorf("cors: origin %q: wildcards are not allowed, name each origin", o)
	}
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("cors: origin %q: %w", o, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("cors: origin %q: want scheme://host[:port], such as https://school.example", o)
	}
	return nil
}
