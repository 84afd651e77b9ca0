package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
)

// DisabledSubject is the subject of every request when authentication is disabled.
const DisabledSubject = "auth-disabled"

// realm names EduTrack in WWW-Authenticate challenges.
const realm = "edutrack"

// Authenticator is the middleware that admits callers with a valid bearer token and puts their
// domain.Actor in the request context.
type Authenticator struct {
	verifier *Verifier // nil when disabled
	log      *slog.Logger
}

// NewAuthenticator returns the middleware that checks each request's token with v.
func NewAuthenticator(v *Verifier, log *slog.Logger) (*Authenticator, error) {
	if v == nil || log == nil {
		return nil, errors.New("auth: NewAuthenticator needs a verifier and a logger")
	}
	return &Authenticator{verifier: v, log: log}, nil
}

// NewDisabledAuthenticator returns middleware that checks nothing and makes every request an
// admin named DisabledSubject. It is its own constructor, and says so in the log, so that no
// setting left empty can turn authentication off.
func NewDisabledAuthenticator(log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		return nil, errors.New("auth: NewDisabledAuthenticator needs a logger")
	}
	log.Warn("authentication is disabled: every request acts as an admin")
	return &Authenticator{log: log}, nil
}

// Middleware answers 401 to a request without a valid bearer token and passes the others on
// with their domain.Actor in the context.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.verifier == nil {
			observe.SetUser(r.Context(), DisabledSubject)
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), domain.Actor{UserID: DisabledSubject, Role: domain.Admin})))
			return
		}
		token, given := bearer(r)
		if !given {
			// RFC 6750 section 3.1: a request with no credentials gets no error code.
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			problem.Write(w, r, a.log, problem.New(http.StatusUnauthorized, "Authorization", "a bearer token is required"))
			return
		}
		p, err := a.verifier.Verify(r.Context(), token)
		if err != nil {
			// The token stays out of the log: it is a credential until it expires.
			a.log.DebugContext(r.Context(), "token refused", "reason", describe(err))
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token", error_description="`+describe(err)+`"`)
			problem.Write(w, r, a.log, problem.New(http.StatusUnauthorized, "Authorization", describe(err)))
			return
		}
		observe.SetUser(r.Context(), p.UserID)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

// Actor verifies a token that came some other way than a request's header (a WebSocket's first
// message) and answers who it names: an admin named DisabledSubject when authentication is
// disabled, as Middleware does.
func (a *Authenticator) Actor(ctx context.Context, token string) (domain.Actor, error) {
	if a.verifier == nil {
		return domain.Actor{UserID: DisabledSubject, Role: domain.Admin}, nil
	}
	p, err := a.verifier.Verify(ctx, token)
	if err != nil {
		return domain.Actor{}, errors.New(describe(err))
	}
	return p, nil
}

// bearer returns the request's bearer token, and whether the request offered one at all.
func bearer(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", false
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, say) offers no bearer token; the challenge tells which to use.
		return "", len(values) > 1
	}
	if len(values) > 1 {
		return "", true // which of two tokens would we trust?
	}
	return strings.TrimSpace(token), true
}

// describe tells the client why its token was refused, in words fit for error_description
// (no quotes or backslashes) and without echoing anything from the token.
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, errNoRole), errors.Is(err, domain.ErrUnknownRole):
		return "the token carries no EduTrack role"
	default:
		return "the token is not valid"
	}
}
