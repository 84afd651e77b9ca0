package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
)

func TestCookieGate(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := NewAuthenticator(newTestVerifier(t), log)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewCookieGate(a, log, "ui", "/admin/jobs/", domain.Admin)
	if err != nil {
		t.Fatal(err)
	}
	adminClaims := claimsAt(t0)
	adminClaims["role"] = "admin"
	admin := sign(t, jwt.SigningMethodHS256, testKey, adminClaims, nil)
	learner := sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
	forged := sign(t, jwt.SigningMethodHS256, otherKey, adminClaims, nil)

	signIn := func(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
		t.Helper()
		w := httptest.NewRecorder()
		g.SignIn(w, req)
		return w
	}
	page := func(cookie *http.Cookie) int {
		r := httptest.NewRequest(http.MethodGet, "/admin/jobs/", nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		g.Middleware(echoPrincipal).ServeHTTP(w, r)
		return w.Code
	}

	t.Run("signs_an_admin_in_with_a_bearer_header_into_a_cookie_of_the_path", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/admin/jobs/session", nil)
		r.Header.Set("Authorization", "Bearer "+admin)
		w := signIn(t, r)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/jobs/" {
			t.Fatalf("status %d, Location %q; want 303 to /admin/jobs/", w.Code, w.Header().Get("Location"))
		}
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%d cookies; want 1", len(cookies))
		}
		c := cookies[0]
		if c.Name != "ui" || c.Path != "/admin/jobs/" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
			t.Errorf("cookie %+v: want ui, path /admin/jobs/, HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
		}
		if want := t0.Add(time.Hour); !c.Expires.Equal(want) {
			t.Errorf("cookie expires %v; want the token's exp %v", c.Expires, want)
		}
		if code := page(&http.Cookie{Name: "ui", Value: c.Value}); code != http.StatusOK {
			t.Errorf("the page with the cookie: status %d; want 200", code)
		}
	})
	t.Run("signs_an_admin_in_with_a_form_and_marks_the_cookie_secure_behind_TLS", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/admin/jobs/session", strings.NewReader(url.Values{"token": {admin}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Forwarded-Proto", "https")
		w := signIn(t, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("status %d; want 303: %s", w.Code, w.Body)
		}
		if c := w.Result().Cookies(); len(c) != 1 || !c[0].Secure {
			t.Errorf("cookies %+v; want one, Secure", c)
		}
	})
	t.Run("refuses_others_401_with_no_cookie", func(t *testing.T) {
		for name, token := range map[string]string{"learner": learner, "forged": forged, "none": ""} {
			r := httptest.NewRequest(http.MethodPost, "/admin/jobs/session", nil)
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			w := signIn(t, r)
			if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
				t.Errorf("%s: status %d, cookies %v; want 401 and none", name, w.Code, w.Result().Cookies())
			}
		}
	})
	t.Run("answers_404_without_an_admin's_cookie", func(t *testing.T) {
		for name, c := range map[string]*http.Cookie{"no cookie": nil, "learner": {Name: "ui", Value: learner},
			"forged": {Name: "ui", Value: forged}, "another cookie": {Name: "other", Value: admin}} {
			if code := page(c); code != http.StatusNotFound {
				t.Errorf("%s: status %d; want 404", name, code)
			}
		}
	})
}
