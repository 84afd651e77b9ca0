package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
)

// caller is who sends a request in the authorization table: a role and a subject, or a token
// that is not valid at all.
type caller struct {
	name          string
	authorization func() string // the Authorization header; empty sends none
}

func as(sub string, role domain.Role) caller {
	return caller{name: sub, authorization: func() string { return bearer(sub, role) }}
}

// The callers of the table: ins teaches the courses, ins2 teaches none of them, ada learns in
// them, bob is another learner.
var (
	asAdmin   = as("root", domain.Admin)
	asAuditor = as("aud", domain.Auditor)
	asIns     = as("ins", domain.Instructor)
	asIns2    = as("ins2", domain.Instructor)
	asAda     = as("ada", domain.Learner)
	asBob     = as("bob", domain.Learner)
	// Tokens that must never get in.
	noToken = caller{name: "no token", authorization: func() string { return "" }}
	expired = caller{name: "an expired token", authorization: func() string {
		t, err := auth.Mint([]byte(testKey), auth.Claims{Subject: "root", Role: domain.Admin, TTL: time.Hour, IssuedAt: time.Now().Add(-2 * time.Hour)})
		if err != nil {
			panic(err)
		}
		return "Bearer " + t
	}}
	forged = caller{name: "a token signed with another key", authorization: func() string {
		t, err := auth.Mint([]byte("another-key-of-32-bytes-or-more-xyz"), auth.Claims{Subject: "root", Role: domain.Admin})
		if err != nil {
			panic(err)
		}
		return "Bearer " + t
	}}
	algNone = caller{name: "an alg none token", authorization: func() string {
		now := time.Now()
		t, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": auth.DefaultIssuer, "aud": auth.DefaultAudience,
			"sub": "root", "role": "admin", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}).
			SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			panic(err)
		}
		return "Bearer " + t
	}}
	everyCaller = []caller{asAdmin, asAuditor, asIns, asIns2, asAda, asBob, noToken, expired, forged, algNone}
)

// passes is an expected status meaning "let through": anything but 401, 403 and a 5xx.
const passes = -1

// routeCase is one route of the table: the request each caller sends, and what each answers
// and appends. A caller the case names no status for gets 403.
type routeCase struct {
	method string
	// path and body may depend on the caller, so that each allowed caller changes an object of
	// its own and every success appends what it says.
	path   func(c caller) string
	body   func(c caller) string
	status map[string]int
	// appends is the events a success appends, by caller; those left out append none.
	appends map[string]int
}

func fixed(s string) func(caller) string { return func(caller) string { return s } }

// byCaller names an object of the caller's own, for the callers the route allows; the others
// are refused, and ask for the admin's.
func byCaller(format string, allowed ...caller) func(caller) string {
	return func(c caller) string {
		for _, a := range allowed {
			if a.name == c.name {
				return fmt.Sprintf(format, c.name)
			}
		}
		return fmt.Sprintf(format, asAdmin.name)
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	seq := 0
	fresh := func(prefix string) string { seq++; return fmt.Sprintf("%s-%d", prefix, seq) }

	// The world of the table, set up by the test's admin.
	for _, u := range [][2]string{{"ins", "instructor"}, {"ins2", "instructor"}, {"ada", "learner"}, {"bob", "learner"}, {"probe2", "learner"}} {
		s.ok(s.do("POST", "/v1/users", user(u[0], "Name of "+u[0], u[1])), created, 1)
	}
	courseBy := func(id string, modules []string, publish bool) {
		s.ok(s.do("POST", "/v1/courses", map[string]string{"id": id, "title": "Course " + id, "category": "programming",
			"level": "beginner", "instructorId": "ins"}), created, 1)
		for _, m := range modules {
			s.ok(s.do("POST", "/v1/courses/"+id+"/modules", module(m, "Module "+m)), created, 1)
		}
		if publish {
			s.ok(s.do("POST", "/v1/courses/"+id+"/publish", nil), ok, 1)
		}
	}
	courseBy("go", []string{"m-root", "m-ada", "m-last"}, true)
	courseBy("draft", []string{"m1"}, false)
	for _, who := range []string{"root", "ins"} {
		courseBy("pub-"+who, []string{"m1"}, false)
		courseBy("arc-"+who, []string{"m1"}, true)
	}
	for _, who := range []string{"root", "ada"} {
		courseBy("enr-"+who, []string{"m1"}, true)
		courseBy("wd-"+who, []string{"m1"}, true)
		s.ok(s.do("POST", "/v1/courses/wd-"+who+"/enrollments", enrollment("ada")), created, 1)
	}
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)

	admins := map[string]int{"root": 200}
	teachers := func(code int) map[string]int { return map[string]int{"root": code, "ins": code, "ins2": 404} }
	selves := func(code int) map[string]int { return map[string]int{"root": code, "ada": code, "bob": 404} }
	readers := map[string]int{"root": 200, "ins": 200, "ins2": 200, "ada": 200, "bob": 200}
	records := map[string]int{"root": 200, "aud": 200, "ada": 200, "bob": 404}
	disclosed := map[string]int{"root": 1, "aud": 1} // a read by anyone but ada records a disclosure
	one := func(names ...string) map[string]int {
		m := map[string]int{}
		for _, n := range names {
			m[n] = 1
		}
		return m
	}
	routes := []routeCase{
		{method: "POST", path: fixed("/v1/users"), status: map[string]int{"root": 201}, appends: one("root"),
			body: func(caller) string {
				return fmt.Sprintf(`{"id":%q,"name":"Someone","email":"someone@example.com","role":"learner"}`, fresh("u"))
			}},
		{method: "PATCH", path: fixed("/v1/users/probe2"), status: admins, appends: one("root"),
			body: func(caller) string { return fmt.Sprintf(`{"name":%q}`, fresh("Probe")) }},
		// Naming another instructor is refused for the role's sake: 403, also to ins2.
		{method: "POST", path: fixed("/v1/courses"), status: map[string]int{"root": 201, "ins": 201, "ins2": 403}, appends: one("root", "ins"),
			body: func(caller) string {
				return fmt.Sprintf(`{"id":%q,"title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`, fresh("c"))
			}},
		{method: "PATCH", path: fixed("/v1/courses/go"), status: teachers(200), appends: one("root", "ins"),
			body: func(caller) string { return fmt.Sprintf(`{"title":%q}`, fresh("Go")) }},
		{method: "POST", path: fixed("/v1/courses/go/modules"), status: teachers(201), appends: one("root", "ins"),
			body: func(caller) string { return fmt.Sprintf(`{"id":%q,"title":"More"}`, fresh("extra")) }},
		{method: "POST", path: byCaller("/v1/courses/pub-%s/publish", asAdmin, asIns), status: teachers(200), appends: one("root", "ins")},
		{method: "POST", path: byCaller("/v1/courses/arc-%s/archive", asAdmin, asIns), status: teachers(200), appends: one("root", "ins")},
		{method: "POST", path: byCaller("/v1/courses/enr-%s/enrollments", asAdmin, asAda), body: fixed(`{"learnerId":"ada"}`),
			status: selves(201), appends: one("root", "ada")},
		{method: "DELETE", path: byCaller("/v1/courses/wd-%s/enrollments/ada", asAdmin, asAda), status: selves(200), appends: one("root", "ada")},
		{method: "POST", path: byCaller("/v1/learners/ada/courses/go/modules/m-%s/complete", asAdmin, asAda), status: selves(200), appends: one("root", "ada")},

		{method: "GET", path: fixed("/v1/courses"), status: readers},
		{method: "GET", path: fixed("/v1/courses/go"), status: readers},
		// A draft is its instructor's: to other readers it does not exist.
		{method: "GET", path: fixed("/v1/courses/draft"), status: map[string]int{"root": 200, "ins": 200, "ins2": 404, "ada": 404, "bob": 404}},
		{method: "GET", path: fixed("/v1/courses/go/stats"), status: teachers(200)},
		{method: "GET", path: fixed("/v1/courses/go/roster"), status: teachers(200)},
		{method: "GET", path: fixed("/v1/learners/ada/dashboard"), status: records, appends: disclosed},
		{method: "GET", path: fixed("/v1/learners/ada/history"), status: records, appends: disclosed},
		{method: "GET", path: fixed("/v1/learners/ada/history?format=xapi"), status: records, appends: disclosed},
		{method: "GET", path: fixed("/v1/learners/ada/history?asOf=" + time.Now().UTC().Format(time.RFC3339)), status: records, appends: disclosed},
		{method: "GET", path: fixed("/v1/learners/ada/disclosures"), status: records},

		{method: "GET", path: fixed("/v1/admin/projections"), status: admins},
		{method: "GET", path: fixed("/v1/admin/projections/courses"), status: admins},
		{method: "GET", path: fixed("/v1/admin/projections/courses/dead-letters"), status: admins},
		// Operations on a projection that does not exist: past the gate, they change nothing.
		{method: "POST", path: fixed("/v1/admin/projections/nope/rebuild"), status: map[string]int{"root": passes}},
		{method: "POST", path: fixed("/v1/admin/projections/nope/skip"), body: fixed(`{"position":1,"reason":"test"}`), status: map[string]int{"root": passes}},
		{method: "POST", path: fixed("/v1/admin/projections/nope/retry"), status: map[string]int{"root": passes}},
	}

	client := &http.Client{Transport: s.client.Transport.(callerTransport).base, Timeout: 30 * time.Second}
	for _, rc := range routes {
		for _, c := range everyCaller {
			path := rc.path(c)
			want, named := rc.status[c.name]
			switch {
			case c.authorization() == "" || c.name == expired.name || c.name == forged.name || c.name == algNone.name:
				want = http.StatusUnauthorized
			case !named:
				want = http.StatusForbidden
			}
			t.Run(strings.ReplaceAll(rc.method+" "+path+" as "+c.name, " ", "_"), func(t *testing.T) {
				var body io.Reader
				if rc.body != nil {
					body = strings.NewReader(rc.body(c))
				}
				req, err := http.NewRequest(rc.method, s.base+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if rc.body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				if a := c.authorization(); a != "" {
					req.Header.Set("Authorization", a)
				}
				before := logHead(t, s)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case want == passes && (resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode >= 500):
					t.Errorf("status %d, want the route to let %s through: %s", resp.StatusCode, c.name, answer)
				case want != passes && resp.StatusCode != want:
					t.Errorf("status %d, want %d: %s", resp.StatusCode, want, answer)
				}
				if want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("401 with WWW-Authenticate %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
				}
				wantAppended := 0
				if resp.StatusCode < 300 {
					wantAppended = rc.appends[c.name]
				}
				if after := logHead(t, s); after-before != uint64(wantAppended) {
					t.Errorf("the log grew by %d events, want %d (status %d)", after-before, wantAppended, resp.StatusCode)
				}
				s.log.pos = logHead(t, s)
			})
		}
	}

	t.Run("records_the_token's_subject_as_the_acting_user_whatever_the_headers_say", func(t *testing.T) {
		r := s.ok(s.do("POST", "/v1/courses/enr-ada/enrollments", enrollment("bob"), "Authorization", bearer("bob", domain.Learner),
			"X-User-Id", "root"), created, 1)
		var page struct {
			Items []struct {
				ActingUser string `json:"actingUser"`
				Position   uint64 `json:"position"`
			} `json:"items"`
		}
		a := get(t, s, "/v1/learners/bob/history?minPosition="+itoa(r.Position), "Authorization", bearer("bob", domain.Learner))
		if err := json.Unmarshal(a.body, &page); err != nil || len(page.Items) != 1 || page.Items[0].ActingUser != "bob" {
			t.Errorf("bob's history %s (%v), want one event acted by bob", a.body, err)
		}
	})

	t.Run("lists_to_the_learner_who_read_their_records_and_why", func(t *testing.T) {
		a := get(t, s, "/v1/learners/ada/dashboard?reason="+strings.ReplaceAll("grade appeal 42", " ", "+"), "Authorization", asAuditor.authorization())
		if a.status != http.StatusOK {
			t.Fatalf("the auditor's read: %d %s", a.status, a.body)
		}
		s.log.pos = logHead(t, s)
		var list struct {
			Items []struct {
				RecipientID   string `json:"recipientId"`
				RecipientRole string `json:"recipientRole"`
				Record        string `json:"record"`
				Reason        string `json:"reason"`
			} `json:"items"`
		}
		a = get(t, s, "/v1/learners/ada/disclosures?limit=100&minPosition="+itoa(s.log.pos), "Authorization", asAda.authorization())
		if err := json.Unmarshal(a.body, &list); err != nil || a.status != http.StatusOK {
			t.Fatalf("ada's disclosures: %d %s (%v)", a.status, a.body, err)
		}
		// The table's reads by root and aud, four records each, then this one.
		if n := len(list.Items); n != 9 {
			t.Fatalf("ada's disclosures: %d, want 9: %+v", n, list.Items)
		}
		last := list.Items[8]
		if last.RecipientID != "aud" || last.RecipientRole != "auditor" || last.Record != "dashboard" || last.Reason != "grade appeal 42" {
			t.Errorf("the last disclosure %+v, want aud's read of the dashboard for grade appeal 42", last)
		}
	})
}

// logHead is the position of the log's last event, as the server's readiness reports it.
func logHead(t *testing.T, s *server) uint64 {
	t.Helper()
	resp, err := s.client.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Projections map[string]struct {
			Head uint64 `json:"head"`
		} `json:"projections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil || len(ready.Projections) == 0 {
		t.Fatalf("/readyz: %v %+v", err, ready)
	}
	var head uint64
	for _, p := range ready.Projections {
		head = max(head, p.Head)
	}
	return head
}

func TestAuthenticationByDefault(t *testing.T) {
	t.Parallel()

	t.Run("generates_a_key_in_the_data_dir_and_says_how_to_mint_a_token", func(t *testing.T) {
		dir := t.TempDir()
		s := startWith(t, dir, &logTracker{}, map[string]string{"EDUTRACK_JWT_KEY": ""})
		logs := s.logs.String()
		if !strings.Contains(logs, "edutrack token --data-dir "+dir+" --sub ID --role admin") {
			t.Errorf("the start-up log does not say how to mint a token:\n%s", logs)
		}
		var token bytes.Buffer
		env := map[string]string{"EDUTRACK_DATA_DIR": dir}
		if err := run(t.Context(), []string{"token", "--sub", "ops", "--role", "admin", "--ttl", "5m"}, func(k string) string { return env[k] }, &token, io.Discard, nil); err != nil {
			t.Fatalf("token: %v", err)
		}
		a := get(t, s, "/v1/courses", "Authorization", "Bearer "+strings.TrimSpace(token.String()))
		if a.status != http.StatusOK {
			t.Errorf("GET /v1/courses with a minted token: %d %s", a.status, a.body)
		}
		// The test's own tokens are signed with another key.
		if a := get(t, s, "/v1/courses"); a.status != http.StatusUnauthorized {
			t.Errorf("GET /v1/courses with a token of another key: %d, want 401", a.status)
		}
		// stop settles the server by registering a user: with the minted token.
		s.client.Transport = tokenTransport{base: s.client.Transport.(callerTransport).base, token: strings.TrimSpace(token.String())}
	})

	t.Run("runs_without_authentication_only_when_told_to_and_warns", func(t *testing.T) {
		s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_JWT_KEY": "", "EDUTRACK_AUTH": "disabled"})
		if logs := s.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "authentication is disabled") {
			t.Errorf("the start-up log does not warn that authentication is off:\n%s", logs)
		}
		client := &http.Client{Transport: s.client.Transport.(callerTransport).base}
		resp, err := client.Get(s.base + "/v1/courses")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/courses without a token, authentication disabled: %d, want 200", resp.StatusCode)
		}
		// Nobody is identified, so reads of a learner's records record no disclosure.
		r := s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
		resp, err = client.Get(s.base + "/v1/learners/ada/dashboard?minPosition=" + itoa(r.Position))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if head := logHead(t, s); resp.StatusCode != http.StatusOK || head != r.Position {
			t.Errorf("ada's dashboard without authentication: %d, log head %d; want 200 and nothing appended after %d", resp.StatusCode, head, r.Position)
		}
	})

	t.Run("keeps_health_readiness_metrics_and_the_description_open", func(t *testing.T) {
		s := start(t, t.TempDir(), &logTracker{})
		client := &http.Client{Transport: s.client.Transport.(callerTransport).base}
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
			resp, err := client.Get(s.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("GET %s without a token: 401, want it open", path)
			}
		}
	})
}

// tokenTransport sends every request with one token.
type tokenTransport struct {
	base  http.RoundTripper
	token string
}

func (tt tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tt.token)
	return tt.base.RoundTrip(req)
}
