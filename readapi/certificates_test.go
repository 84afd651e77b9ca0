package readapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi"
)

const (
	certID  = "3f1c9a52-6c0e-5b7d-9a41-2f8e1d0c7b63"
	certSum = "9b74c9897bac770ffc029102a200c5de0f1a2b3c4d5e6f708192a3b4c5d6e7f8"
	certKey = "certificates/" + certID + "/" + certSum + ".pdf"
)

var certPDF = []byte("%PDF-1.3 a certificate for Ada\n%%EOF\n")

// certificateFixture serves go (taught by ins), ada's dashboard with her certificate of go, the
// certificate, and its PDF in a file bucket; blobs wraps the bucket when not nil.
func certificateFixture(t *testing.T, blobs func(readapi.Blobs) readapi.Blobs) *fixture {
	t.Helper()
	bucket, err := fileblob.OpenBucket(filepath.Join(t.TempDir(), "blobs"), &fileblob.Options{CreateDir: true, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	if err := bucket.WriteAll(context.Background(), certKey, certPDF, nil); err != nil {
		t.Fatal(err)
	}
	var b readapi.Blobs = bucket
	if blobs != nil {
		b = blobs(b)
	}
	f := newFixture(t, readapi.Options{Blobs: b})
	f.api.PublicRoutes(f.router)
	f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 1, `{"id":"go","status":"published","instructor":{"id":"ins","name":"Ins"}}`))
	completed := time.Date(2026, 5, 4, 13, 14, 15, 0, time.UTC)
	f.put(documents.LearnersProjection, documents.Dashboards, doc("ada", 3, documents.Dashboard{LearnerID: "ada", Name: "Ada",
		Enrollments: []documents.Enrollment{
			{CourseID: "go", Status: "completed", CompletedAt: &completed,
				Certificate: &documents.CertificateRef{ID: certID, IssuedAt: completed, URL: documents.CertificatePath("ada", "go")}},
			{CourseID: "rust", Status: "active"},
		}}),
		doc("bob", 4, `{"learnerId":"bob","name":"Bob","enrollments":[]}`))
	f.put(documents.LearnersProjection, documents.Certificates, doc(certID, 5, documents.Certificate{
		Verification:  documents.Verification{LearnerName: "Ada Lovelace", CourseTitle: "Go", CompletedAt: completed, SHA256: certSum},
		CertificateID: certID, LearnerID: "ada", CourseID: "go", BlobKey: certKey, IssuedAt: completed}))
	return f
}

func TestCertificatePDF(t *testing.T) {
	t.Parallel()
	const path = "/v1/learners/ada/certificates/go"
	for _, tc := range []struct {
		caller domain.Actor
		status int
		// disclosed is whether the read is recorded as a disclosure.
		disclosed bool
	}{
		{ada, http.StatusOK, false},
		{ins, http.StatusOK, false}, // the course's instructor, as for its roster
		{admin, http.StatusOK, true},
		{ins2, http.StatusNotFound, false},
		{bob, http.StatusNotFound, false},
		{auditor, http.StatusNotFound, false},
	} {
		t.Run("as_"+tc.caller.UserID, func(t *testing.T) {
			t.Parallel()
			f := certificateFixture(t, nil)
			resp := f.getAs(tc.caller, path)
			b := body(t, resp)
			if tc.status != http.StatusOK {
				if resp.StatusCode != tc.status || bytes.Contains(b, []byte("PDF")) {
					t.Errorf("%d %s; want %d", resp.StatusCode, b, tc.status)
				}
			} else if resp.StatusCode != http.StatusOK || !bytes.Equal(b, certPDF) || resp.Header.Get("Content-Type") != "application/pdf" ||
				resp.Header.Get("ETag") != `"`+certSum+`"` || resp.Header.Get("Cache-Control") != "private, no-cache" {
				t.Errorf("%d %v %q; want 200, the PDF, its digest as ETag, private", resp.StatusCode, resp.Header, b)
			}
			var want []string
			if tc.disclosed {
				want = []string{"ada " + string(learner.RecordCertificate) + " " + tc.caller.UserID}
			}
			var got []string
			for _, d := range f.disclosed.recorded() {
				got = append(got, d.LearnerID+" "+string(d.Record)+" "+d.Recipient.UserID)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("disclosures (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("answers_304_to_the_digest", func(t *testing.T) {
		t.Parallel()
		f := certificateFixture(t, nil)
		resp := f.getAs(ada, path, "If-None-Match", `"`+certSum+`"`)
		if b := body(t, resp); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
			t.Errorf("%d %q; want 304 without a body", resp.StatusCode, b)
		}
	})
	t.Run("answers_404_before_the_certificate_is_issued", func(t *testing.T) {
		t.Parallel()
		f := certificateFixture(t, nil)
		for _, p := range []string{"/v1/learners/ada/certificates/rust", "/v1/learners/ada/certificates/nope", "/v1/learners/nope/certificates/go"} {
			wantProblem(t, p, f.getAs(admin, p), http.StatusNotFound, "")
		}
		if d := f.disclosed.recorded(); len(d) != 0 {
			t.Errorf("disclosed %v for certificates that do not exist", d)
		}
	})
	t.Run("answers_503_while_the_blob_store_is_down", func(t *testing.T) {
		t.Parallel()
		f := certificateFixture(t, func(readapi.Blobs) readapi.Blobs { return down{} })
		resp := f.getAs(ada, path)
		wantProblem(t, path, resp, http.StatusServiceUnavailable, "")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("a 503 without Retry-After")
		}
	})
}

type down struct{}

func (down) NewReader(context.Context, string, *blob.ReaderOptions) (*blob.Reader, error) {
	return nil, errors.New("connection refused")
}

func TestCertificateVerification(t *testing.T) {
	t.Parallel()
	f := certificateFixture(t, nil)
	anonymous := func(path string) *http.Response {
		rec := httptest.NewRecorder()
		f.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Result()
	}
	path := "/v1/certificates/" + certID
	b := wantOK(t, path, anonymous(path))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"learnerName": "Ada Lovelace", "courseTitle": "Go", "completedAt": "2026-05-04T13:14:15Z", "sha256": certSum}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the verification tells (-want +got):\n%s", diff)
	}
	for _, p := range []string{"/v1/certificates/nope", "/v1/certificates/" + strings.ToUpper(certID)} {
		wantProblem(t, p, anonymous(p), http.StatusNotFound, "")
	}
}
