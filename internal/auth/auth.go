// Package auth owns who is calling the EduTrack HTTP APIs: it verifies bearer JWTs (signed with
// the deployment's HMAC key or by a school's OIDC provider), mints tokens, and puts the caller's
// caller (a domain.Actor) in each request's context for the handlers to check.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
)

type actorKey struct{}

// NewContext returns ctx carrying the caller a. The middleware calls it; tests of handlers can
// too.
func NewContext(ctx context.Context, a domain.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// FromContext returns the caller that the middleware put in ctx, and false when there is none.
func FromContext(ctx context.Context) (domain.Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(domain.Actor)
	return a, ok
}

// Require returns nil when the caller in ctx has one of roles, and otherwise a 403 problem for
// handlers to return. A context without a caller is an internal error, not a 401: it means the
// route was mounted without the middleware, and it must fail closed.
func Require(ctx context.Context, roles ...domain.Role) error {
	p, ok := FromContext(ctx)
	if !ok {
		return errors.New("auth: no principal in the request context; is the route behind the authenticator?")
	}
	if slices.Contains(roles, p.Role) {
		return nil
	}
	return problem.New(http.StatusForbidden, "", fmt.Sprintf("the %s role may not do this", p.Role))
}

// Restrict is middleware that lets only callers with one of roles through and answers the others
// 403 (see Require). It goes after the Authenticator.
func Restrict(log *slog.Logger, roles ...domain.Role) func(http.Handler) http.Handler {
	if log == nil {
		panic("auth: Restrict needs a logger")
	}
	roles = slices.Clone(roles)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := Require(r.Context(), roles...); err != nil {
				problem.Write(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
