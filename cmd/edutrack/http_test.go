package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawDo sends method path with the given headers (name, value pairs), signed as callerTransport
// signs, and returns the answer with its body read.
func rawDo(t *testing.T, s *server, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestHTTPAsClientsExpectIt checks what every client may take for granted: HEAD wherever GET
// is served, 405 naming what the route takes, nosniff on every answer, a request id on every
// answer, and a data dir that only its owner can read.
func TestHTTPAsClientsExpectIt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // made by serve
	s := start(t, dir, &logTracker{})
	seed(t, s)
	checkCaughtUp(t, s) // the read models stay as they are while GET and HEAD compare
	gets := []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/courses", "/v1/courses/go", "/v1/courses/go/stats",
		"/v1/courses/go/roster", "/v1/learners/bob/dashboard", "/v1/learners/bob/history", "/v1/learners/bob/disclosures",
		"/v1/admin/projections", "/v1/admin/projections/courses", "/v1/admin/projections/courses/dead-letters"}

	t.Run("HEAD_answers_as_GET_without_a_body", func(t *testing.T) {
		for _, path := range gets {
			get, _ := rawDo(t, s, http.MethodGet, path, "Accept-Encoding", "identity")
			head, body := rawDo(t, s, http.MethodHead, path, "Accept-Encoding", "identity")
			if head.StatusCode != get.StatusCode || len(body) != 0 || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") ||
				head.Header.Get("ETag") != get.Header.Get("ETag") {
				t.Errorf("HEAD %s: %d %q ETag %q with %d bytes; GET answers %d %q ETag %q", path, head.StatusCode,
					head.Header.Get("Content-Type"), head.Header.Get("ETag"), len(body), get.StatusCode, get.Header.Get("Content-Type"),
					get.Header.Get("ETag"))
			}
		}
	})
	t.Run("405_names_what_the_route_takes", func(t *testing.T) {
		for _, tc := range []struct{ method, path, allow string }{
			{http.MethodDelete, "/v1/courses", "GET, HEAD, POST"},
			{http.MethodPut, "/v1/courses/go", "GET, HEAD, PATCH"},
			{http.MethodGet, "/v1/courses/go/publish", "POST"},
			{http.MethodPost, "/healthz", "GET, HEAD"},
			{"BREW", "/v1/courses/go/enrollments/ada", "DELETE"},
		} {
			resp, body := rawDo(t, s, tc.method, tc.path)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s: %d, Allow %q, %s; want 405, Allow %q, a problem", tc.method, tc.path, resp.StatusCode,
					resp.Header.Get("Allow"), body, tc.allow)
			}
		}
	})
	t.Run("every_answer_says_nosniff_and_carries_its_request_id", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodGet, "/healthz"}, {http.MethodGet, "/v1/courses/go"}, {http.MethodGet, "/v1/courses/nope"},
			{http.MethodGet, "/nowhere"}, {http.MethodDelete, "/v1/courses"}, {http.MethodPost, "/v1/courses"},
			{http.MethodGet, "/v1/learners/bob/dashboard?limit=x"},
		} {
			resp, _ := rawDo(t, s, tc.method, tc.path)
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s %s (%d): X-Content-Type-Options %q, X-Request-Id %q; want nosniff and an id", tc.method, tc.path,
					resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("X-Request-Id"))
			}
		}
		if resp := rawGet(t, s, "/healthz", "X-Request-Id", "req-from-the-client"); resp.Header.Get("X-Request-Id") != "req-from-the-client" {
			t.Errorf("the client's X-Request-Id came back as %q", resp.Header.Get("X-Request-Id"))
		}
		if resp := rawGet(t, s, "/healthz", "X-Request-Id", strings.Repeat("x", 129)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("an X-Request-Id of 129 bytes: %d, want 400", resp.StatusCode)
		}
	})
	t.Run("the_data_dir_is_its_owner's_alone", func(t *testing.T) {
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != 0o700 {
			t.Errorf("data dir mode %o, want 700", mode)
		}
		for _, name := range []string{"events.db", "read.db", "jwt.key"} {
			if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %o, want 600", name, st.Mode().Perm())
			}
		}
	})
}

// An existing data dir that others could read is narrowed at start.
func TestAnExistingDataDirIsMadePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, &logTracker{})
	s.stop()
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data dir after a start: %v, %v; want mode 700", st.Mode().Perm(), err)
	}
}

// jsonLines decodes every line of logs as JSON; a line that is not JSON fails the test.
func jsonLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestLogsAnOperatorCanUse runs a server with EDUTRACK_LOG_FORMAT=json and reads its log: one
// JSON object per line, one access line per request, the request id of a command in its events
// and in the learner's history, and no library chatter at info level.
func TestLogsAnOperatorCanUse(t *testing.T) {
	t.Parallel()
	s := launch(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_LOG_FORMAT": "json"}, func(string) bool { return false })
	s.ok(s.do(http.MethodPost, "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses", newCourseBy("go", "ins")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses/go/publish", nil), ok, 1)
	enrolled := s.do(http.MethodPost, "/v1/courses/go/enrollments", enrollment("ada"), "X-Request-Id", "enrol-ada-42")
	res := s.ok(enrolled, created, 1)
	if enrolled.requestID != "enrol-ada-42" {
		t.Errorf("the enrollment's answer names request %q, want enrol-ada-42", enrolled.requestID)
	}
	history := get(t, s, "/v1/learners/ada/history?minPosition="+itoa(res.Position))
	var page struct {
		Items []struct {
			Type      string `json:"type"`
			RequestID string `json:"requestId"`
		} `json:"items"`
	}
	if err := json.Unmarshal(history.body, &page); err != nil || len(page.Items) != 1 || page.Items[0].RequestID != "enrol-ada-42" {
		t.Errorf("ada's history %s (%v); want the enrollment with requestId enrol-ada-42", history.body, err)
	}
	time.Sleep(50 * time.Millisecond) // the last access line is written once the answer is sent
	s.stop()

	lines := jsonLines(t, s.logs.String())
	var access, started int
	for _, l := range lines {
		switch l["msg"] {
		case "request":
			access++
			for _, field := range []string{"method", "route", "status", "duration_ms", "bytes", "request_id", "user_id"} {
				if _, ok := l[field]; !ok {
					t.Errorf("access line without %s: %v", field, l)
				}
			}
			if l["request_id"] == "enrol-ada-42" && (l["route"] != "/v1/courses/{id}/enrollments" || l["user_id"] != testAdmin || l["status"] != float64(201)) {
				t.Errorf("the enrollment's access line %v; want its route pattern, user %s and 201", l, testAdmin)
			}
		case "edutrack serving":
			started++
		}
		if l["level"] == "INFO" && l["msg"] != "request" && (strings.Contains(l["msg"].(string), "handler") || strings.Contains(l["msg"].(string), "router")) {
			t.Errorf("a library's line at info level: %v", l)
		}
		if l["level"] == "ERROR" {
			t.Errorf("an error was logged: %v", l)
		}
	}
	if started != 1 || access < 8 {
		t.Errorf("%d start lines and %d access lines, want 1 and one per request (8 or more)", started, access)
	}
}

// A start that fails says so in the log's format: an operator's pipeline reads it like any line.
func TestAFailedStartIsALogLine(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	env := testEnv(t.TempDir())
	env["EDUTRACK_LOG_FORMAT"] = "json"
	env["EDUTRACK_LEASE_TTL"] = "1ms"
	err := run(t.Context(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, &stderr, nil)
	if err == nil {
		t.Fatal("serve started with a lease TTL of 1ms")
	}
	lines := jsonLines(t, stderr.String())
	if len(lines) != 1 || lines[0]["level"] != "ERROR" || !strings.Contains(lines[0]["err"].(string), "EDUTRACK_LEASE_TTL") {
		t.Errorf("stderr %q; want one JSON line at ERROR naming EDUTRACK_LEASE_TTL", stderr.String())
	}
}
