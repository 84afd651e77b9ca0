package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors"
)

// TestAdminsOpenTheJobsUIInABrowser signs an admin in to River's web UI at /admin/jobs/ in
// headless Chromium, through the sign-in form, and checks that the UI lists a failed email
// job, on both queue engines; and that nobody else reaches it.
func TestAdminsOpenTheJobsUIInABrowser(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			srv := testsmtp.Start(t, testsmtp.Options{})
			srv.Down()
			pgURL := ""
			if engine == "postgres" {
				pgURL = testpostgres.NewDatabase(t)
			}
			env := jobsEnv(srv, pgURL, "write,project,read,react,work")
			if pgURL == "" {
				delete(env, "EDUTRACK_POSTGRES_URL")
			}
			// The SMTP server is down: the email fails, which is normal, not an error of EduTrack's.
			s := launch(t, t.TempDir(), &logTracker{}, env, func(string) bool { return false })
			s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
			s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
			s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
			s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
			s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
			s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
			waitForJobState(t, s, "enrollment_email", "retryable")

			admin := strings.TrimPrefix(bearer("root", domain.Admin), "Bearer ")
			learner := strings.TrimPrefix(bearer("ada", domain.Learner), "Bearer ")
			t.Run("nobody_else_reaches_it", func(t *testing.T) {
				for name, headers := range map[string][]string{
					"a bearer header without the cookie": {"Authorization", "Bearer " + admin},
					"no credentials":                     {"Authorization", ""},
					"a learner's token in the cookie":    {"Cookie", jobsUICookie + "=" + learner},
					"a forged token in the cookie":       {"Cookie", jobsUICookie + "=" + admin + "x"},
				} {
					for _, path := range []string{"/admin/jobs/", "/admin/jobs/api/jobs?state=retryable"} {
						if code := plainGet(t, s.base+path, headers...); code != http.StatusNotFound {
							t.Errorf("%s, GET %s: status %d; want 404", name, path, code)
						}
					}
				}
				r := s.send(http.MethodPost, "/admin/jobs/session", "", nil, "Authorization", "Bearer "+learner)
				if r.status != http.StatusUnauthorized {
					t.Errorf("a learner signing in: status %d; want 401: %s", r.status, r.body)
				}
				// Another site's form posting an admin's token (a sign-in forced on the admin's
				// browser) is refused before the token is looked at.
				r = s.send(http.MethodPost, "/admin/jobs/session", "", nil, "Authorization", "Bearer "+admin, "Sec-Fetch-Site", "cross-site")
				if r.status != http.StatusForbidden {
					t.Errorf("a cross-site sign-in: status %d; want 403: %s", r.status, r.body)
				}
			})

			b := newBrowser(t)
			b.navigate(s.base + "/admin/jobs/session")
			// As a person would: paste the token into the form and submit it.
			ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
			defer cancel()
			fill := fmt.Sprintf(`(() => { const f = document.querySelector("form"); f.elements.token.value = %q; f.submit(); return true })()`, admin)
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fill)); err != nil {
				t.Fatalf("sign in: %v", err)
			}
			b.waitForPage("/admin/jobs/jobs", "Running")
			b.navigate(s.base + "/admin/jobs/jobs?state=retryable")
			b.waitForPage("/admin/jobs/jobs", "enrollment_email")
		})
	}
}

// waitForJobState waits up to 20 s for the one job of kind to be in state.
func waitForJobState(t *testing.T, s *server, kind, state string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := s.do(http.MethodGet, "/v1/admin/jobs?kind="+kind, nil)
		var page struct{ Items []reactors.Job }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil {
			t.Fatalf("list the jobs: status %d: %s", r.status, r.body)
		}
		if len(page.Items) == 1 && page.Items[0].State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s job %s after 20s: %+v", kind, state, page.Items)
		}
	}
}

// plainGet is the status of a GET of u with headers (name, value pairs; an empty value sends
// none), sent as they are: unlike the server's client it signs nothing.
func plainGet(t *testing.T, u string, headers ...string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitForPage waits until the tab shows a page under path whose text holds want, and fails
// after 20 s, showing what the page shows and what it threw.
func (b *browser) waitForPage(path, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		at, err := chromedp.Run(ctx, chromedp.Location())
		var text string
		if err == nil {
			text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		}
		cancel()
		// A read that a navigation interrupts (the sign-in's redirect, the UI routing itself)
		// is tried again: the page is still loading, and only the deadline ends the wait.
		if err == nil && strings.Contains(at, path) && strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				b.t.Fatalf("read the page: %v", err)
			}
			b.mu.Lock()
			thrown := strings.Join(b.thrown, "\n")
			b.mu.Unlock()
			b.t.Fatalf("after 20s the tab is at %s and shows no %q:\n%s\nexceptions:\n%s", at, want, text, thrown)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
