package auth

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
)

// CookieGate admits browsers to pages under one path (the jobs UI) by a cookie. A browser
// sends no Authorization header when it follows a link, and a token in a URL lands in logs,
// so the caller signs in once with its bearer token (SignIn) and the gate keeps that token in
// a cookie that only the pages under the path see, checking it again on every request: it
// lasts as long as the token, and a token the verifier would refuse opens nothing.
type CookieGate struct {
	authn *Authenticator
	log   *slog.Logger
	name  string
	path  string
	roles []domain.Role
}

// NewCookieGate returns a gate of the pages under path (ending in "/") for callers with one of
// roles, its cookie named name. With authentication disabled it lets everyone through, as
// the Authenticator does.
func NewCookieGate(a *Authenticator, log *slog.Logger, name, path string, roles ...domain.Role) (*CookieGate, error) {
	if a == nil || log == nil || name == "" || !strings.HasPrefix(path, "/") || !strings.HasSuffix(path, "/") || len(roles) == 0 {
		return nil, errors.New("auth: NewCookieGate needs an authenticator, a logger, a cookie name, a path ending in / and roles")
	}
	return &CookieGate{authn: a, log: log, name: name, path: path, roles: slices.Clone(roles)}, nil
}

// errNotAdmitted answers every refused sign-in alike, so that it tells nothing of a token.
var errNotAdmitted = problem.New(http.StatusUnauthorized, "token", "a valid token of a role that may open these pages is required")

// admit returns the caller of token if it may pass, and when its token expires.
func (g *CookieGate) admit(r *http.Request, token string) (domain.Actor, time.Time, bool) {
	if g.authn.verifier == nil {
		return domain.Actor{UserID: DisabledSubject, Role: domain.Admin}, time.Time{}, true
	}
	a, err := g.authn.verifier.Verify(r.Context(), token)
	if err != nil {
		g.log.DebugContext(r.Context(), "token refused", "reason", describe(err))
		return domain.Actor{}, time.Time{}, false
	}
	if !slices.Contains(g.roles, a.Role) {
		return domain.Actor{}, time.Time{}, false
	}
	var expires time.Time
	// The signature was checked above; this only reads exp back.
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err == nil && claims.ExpiresAt != nil {
		expires = claims.ExpiresAt.Time
	}
	return a, expires, true
}

// SignIn takes a token (an Authorization: Bearer header, or the field token of a form that
// SignInForm serves), and when it may pass sets the cookie and sends the browser to the path
// (303); every refusal is a 401. POST only.
func (g *CookieGate) SignIn(w http.ResponseWriter, r *http.Request) {
	token, given := bearer(r)
	if !given {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenLen+1024)
		if err := r.ParseForm(); err != nil {
			problem.Write(w, r, g.log, problem.New(http.StatusBadRequest, "token", "must come as a bearer token or a form field"))
			return
		}
		token = strings.TrimSpace(r.PostForm.Get("token"))
	}
	a, expires, ok := g.admit(r, token)
	if !ok {
		problem.Write(w, r, g.log, errNotAdmitted)
		return
	}
	observe.SetUser(r.Context(), a.UserID)
	if g.authn.verifier != nil {
		http.SetCookie(w, &http.Cookie{Name: g.name, Value: token, Path: g.path, Expires: expires,
			HttpOnly: true, SameSite: http.SameSiteStrictMode,
			// Behind a proxy that ends TLS the request itself is plain HTTP.
			Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.path, http.StatusSeeOther)
}

// SignInForm serves a page with a form that posts a pasted token to SignIn at action.
func (g *CookieGate) SignInForm(action string) http.HandlerFunc {
	page := `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EduTrack: sign in</title></head>
<body><form method="post" action="` + action + `">
<label>An admin's token (<code>edutrack token --sub you --role admin --ttl 1h</code>):
<input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button>
</form></body></html>
`
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
		io.WriteString(w, page)
	}
}

// Middleware passes a request whose cookie holds a token that may pass, with its caller in the
// context, and answers every other 404, as if the pages were not there.
func (g *CookieGate) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var token string
		if c, err := r.Cookie(g.name); err == nil {
			token = c.Value
		}
		a, _, ok := g.admit(r, token)
		if !ok {
			problem.Write(w, r, g.log, problem.New(http.StatusNotFound, "", "no such route"))
			return
		}
		observe.SetUser(r.Context(), a.UserID)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), a)))
	})
}
