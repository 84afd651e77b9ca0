package jobsapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/jobsapi"
)

// fakeJobs knows job 7, discarded, and records the filter it was asked for.
type fakeJobs struct{ asked reactors.JobFilter }

func (f *fakeJobs) List(_ context.Context, filter reactors.JobFilter) ([]reactors.Job, error) {
	f.asked = filter
	return []reactors.Job{{ID: 7, Kind: "enrollment_email", State: "discarded"}}, nil
}

func (f *fakeJobs) Retry(_ context.Context, id int64) (reactors.Job, error) {
	switch id {
	case 7:
		return reactors.Job{ID: 7, State: "available"}, nil
	case 8:
		return reactors.Job{}, reactors.ErrJobCompleted
	}
	return reactors.Job{}, reactors.ErrJobNotFound
}

func (f *fakeJobs) Cancel(_ context.Context, id int64) (reactors.Job, error) {
	if id == 7 {
		return reactors.Job{ID: 7, State: "cancelled"}, nil
	}
	return reactors.Job{}, reactors.ErrJobNotFound
}

func TestRoutes(t *testing.T) {
	jobs := &fakeJobs{}
	r := chi.NewRouter()
	jobsapi.Routes(r, jobs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	do := func(method, target, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		r.ServeHTTP(rec, req)
		return rec
	}
	job := func(t *testing.T, rec *httptest.ResponseRecorder) reactors.Job {
		t.Helper()
		var j reactors.Job
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &j); err != nil {
			t.Fatal(err)
		}
		return j
	}

	t.Run("lists the jobs the filter asks for", func(t *testing.T) {
		rec := do("GET", "/v1/admin/jobs?state=discarded&kind=enrollment_email&limit=5", "")
		var out struct{ Items []reactors.Job }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || len(out.Items) != 1 || out.Items[0].ID != 7 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if diff := cmp.Diff(reactors.JobFilter{State: "discarded", Kind: "enrollment_email", Limit: 5}, jobs.asked); diff != "" {
			t.Errorf("filter (-want +got):\n%s", diff)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q; want no-store", cc)
		}
	})
	t.Run("retries and cancels a job", func(t *testing.T) {
		if j := job(t, do("POST", "/v1/admin/jobs/7/retry", "")); j.State != "available" {
			t.Errorf("retry: %+v", j)
		}
		if j := job(t, do("POST", "/v1/admin/jobs/7/cancel", "")); j.State != "cancelled" {
			t.Errorf("cancel: %+v", j)
		}
	})
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		field                      string
	}{
		{"refuses a state it does not know", "GET", "/v1/admin/jobs?state=lost", "", 400, "state"},
		{"refuses a limit out of range", "GET", "/v1/admin/jobs?limit=1001", "", 400, "limit"},
		{"refuses a parameter it does not take", "GET", "/v1/admin/jobs?sate=discarded", "", 400, "sate"},
		{"refuses a parameter given twice", "GET", "/v1/admin/jobs?kind=a&kind=b", "", 400, "kind"},
		{"refuses an id that is not one", "POST", "/v1/admin/jobs/x/retry", "", 400, "id"},
		{"refuses a body", "POST", "/v1/admin/jobs/7/retry", `{"now":true}`, 400, ""},
		{"answers 404 for a job that does not exist", "POST", "/v1/admin/jobs/9/retry", "", 404, ""},
		{"answers 404 for cancelling a job that does not exist", "POST", "/v1/admin/jobs/9/cancel", "", 404, ""},
		{"answers 409 for retrying a completed job", "POST", "/v1/admin/jobs/8/retry", "", 409, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(tc.method, tc.target, tc.body)
			var d problem.Details
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != problem.ContentType || json.Unmarshal(rec.Body.Bytes(), &d) != nil {
				t.Fatalf("%d %s %s; want %d problem+json", rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.status)
			}
			if d.Status != tc.status || d.Field != tc.field || d.Detail == "" {
				t.Errorf("problem %+v; want status %d, field %q and a detail", d, tc.status, tc.field)
			}
		})
	}
}
