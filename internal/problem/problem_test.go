package problem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
)

func TestFrom(t *testing.T) {
	conflict := domain.Errorf(domain.Conflict, "course is not published")
	tests := []struct {
		name string
		err  error
		want problem.Details
	}{
		{
			name: "answers a transport error with its status and field",
			err:  problem.New(http.StatusUnsupportedMediaType, "", "the request body must be application/json"),
			want: problem.Details{Type: "about:blank", Title: "Unsupported Media Type", Status: 415, Detail: "the request body must be application/json"},
		},
		{
			name: "maps an invalid input to 400 naming its field",
			err:  domain.Invalidf("email", "must be a plain email address"),
			want: problem.Details{Type: "about:blank", Title: "Bad Request", Status: 400, Detail: "must be a plain email address", Field: "email"},
		},
		{
			name: "maps not found to 404",
			err:  domain.Errorf(domain.NotFound, "learner not found").WithField("learnerId"),
			want: problem.Details{Type: "about:blank", Title: "Not Found", Status: 404, Detail: "learner not found", Field: "learnerId"},
		},
		{
			name: "maps a conflict to 409 through wrapping",
			err:  fmt.Errorf("enroll ada: %w", conflict),
			want: problem.Details{Type: "about:blank", Title: "Conflict", Status: 409, Detail: "course is not published"},
		},
		{
			name: "answers a body over the limit with 413",
			err:  fmt.Errorf("read body: %w", &http.MaxBytesError{Limit: 1 << 20}),
			want: problem.Details{Type: "about:blank", Title: "Request Entity Too Large", Status: 413, Detail: "the request body is larger than the limit"},
		},
		{
			name: "maps the caller's role being refused to 403",
			err:  domain.Errorf(domain.Forbidden, "an instructor creates courses of their own").WithField("instructorId"),
			want: problem.Details{Type: "about:blank", Title: "Forbidden", Status: 403, Detail: "an instructor creates courses of their own", Field: "instructorId"},
		},
		{
			name: "answers a request past the server's timeout with 503",
			err:  fmt.Errorf("load learner-ada: %w", context.DeadlineExceeded),
			want: problem.Details{Type: "about:blank", Title: "Service Unavailable", Status: 503,
				Detail: "the request took longer than the server allows; retry it"},
		},
		{
			name: "keeps an unknown error's text from the client",
			err:  errors.New("open /var/lib/edutrack/events.db: disk I/O error"),
			want: problem.Details{Type: "about:blank", Title: "Internal Server Error", Status: 500},
		},
		{
			name: "answers a domain error of kind internal with 500",
			err:  domain.Errorf(domain.Internal, "invariant broken"),
			want: problem.Details{Type: "about:blank", Title: "Internal Server Error", Status: 500, Detail: "invariant broken"},
		},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, problem.From(tc.err)); diff != "" {
				t.Errorf("From (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    problem.Details
		logged  bool
		notInIt string // text the client must not see
	}{
		{
			name: "writes a client error as problem json without logging it",
			err:  domain.Invalidf("title", "must not be empty"),
			want: problem.Details{Type: "about:blank", Title: "Bad Request", Status: 400, Detail: "must not be empty", Field: "title", Instance: "/v1/courses"},
		},
		{
			name:    "logs an internal error and tells the client only that the server failed",
			err:     errors.New("database is locked"),
			want:    problem.Details{Type: "about:blank", Title: "Internal Server Error", Status: 500, Instance: "/v1/courses"},
			logged:  true,
			notInIt: "database is locked",
		},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			rec := httptest.NewRecorder()
			problem.Write(rec, httptest.NewRequest(http.MethodPost, "/v1/courses", nil), log, tc.err)

			if rec.Code != tc.want.Status {
				t.Errorf("status = %d, want %d", rec.Code, tc.want.Status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			body := rec.Body.String()
			var got problem.Details
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if tc.notInIt != "" && strings.Contains(body, tc.notInIt) {
				t.Errorf("body %q leaks %q", body, tc.notInIt)
			}
			if logged := strings.Contains(logs.String(), tc.err.Error()); logged != tc.logged {
				t.Errorf("logged the error: %v, want %v (log %q)", logged, tc.logged, logs.String())
			}
		})
	}
}
