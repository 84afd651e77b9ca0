// Package auth owns who is calling the EduTrack HTTP APIs: it verifies bearer JWTs (signed with
// the deployment's HMAC key or by a school's OIDC provider), mints tokens, and puts the caller's
// Principal in each request's context for the handlers to check.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/edutrack/edutrack/problem"
)

// Role says what a caller may do. It comes from the token's role claim.
type Role string

// The roles a token may carry.
const (
	Learner    Role = "learner"
	Instructor Role = "instructor"
	Admin      Role = "admin"
	// Auditor reads everything and changes nothing.
	Auditor Role = "auditor"
)

// ErrUnknownRole is returned by ParseRole for a name that is not one of the four roles.
var ErrUnknownRole = errors.New("auth: unknown role")

// ParseRole returns the Role spelled s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Learner, Instructor, Admin, Auditor:
		return r, nil
	}
	return "", fmt.Errorf("%w %q: want learner, instructor, admin or auditor", ErrUnknownRole, s)
}

// Principal is the caller of a request: the token's subject and its role.
type Principal struct {
	Subject string
	Role    Role
}

type principalKey struct{}

// NewContext returns ctx carrying p. The middleware calls it; tests of handlers can too.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller that the middleware put in ctx, and false when there is none.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Require returns nil when the caller in ctx has one of roles, and otherwise a 403 problem for
// handlers to return. A context without a caller is an internal error, not a 401: it means the
// route was mounted without the middleware, and it must fail closed.
func Require(ctx context.Context, roles ...Role) error {
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
func Restrict(log *slog.Logger, roles ...Role) func(http.Handler) http.Handler {
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
