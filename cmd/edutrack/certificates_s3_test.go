package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edutrack/edutrack/internal/tests3"
)

// s3Env points the certificates' bucket at b, with its keys in EduTrack's own settings.
func s3Env(b tests3.Bucket) map[string]string {
	return map[string]string{"EDUTRACK_CERTIFICATES": "on", "EDUTRACK_PUBLIC_URL": "https://learn.school.example/",
		"EDUTRACK_BLOB_URL": b.URL(), "EDUTRACK_S3_ACCESS_KEY_ID": b.AccessKey, "EDUTRACK_S3_SECRET_ACCESS_KEY": b.SecretKey}
}

// completeGo has ada complete course go, and returns the completion's position.
func completeGo(s *server) uint64 {
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	return s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 2).Position
}

// waitCertificate waits for ada's certificate of go on her dashboard, and returns its id and URL.
func waitCertificate(t *testing.T, s *server, after uint64, within time.Duration) (id, url string) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		var d struct {
			Enrollments []struct {
				Certificate *struct {
					ID  string `json:"id"`
					URL string `json:"url"`
				} `json:"certificate"`
			} `json:"enrollments"`
		}
		a := get(t, s, "/v1/learners/ada/dashboard?minPosition="+itoa(after))
		if err := json.Unmarshal(a.body, &d); err != nil || a.status != http.StatusOK || len(d.Enrollments) != 1 {
			t.Fatalf("ada's dashboard: %d %s (%v)", a.status, a.body, err)
		}
		if c := d.Enrollments[0].Certificate; c != nil {
			return c.ID, c.URL
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate on ada's dashboard after %v\n%s", within, s.logs)
		}
	}
}

// checkPDF fetches the certificate's PDF through the API and checks it is the one the log
// recorded (the verification answers CertificateIssued's digest); it returns the digest.
func checkPDF(t *testing.T, s *server, id, url string) string {
	t.Helper()
	pdf := get(t, s, url)
	sum := sha256.Sum256(pdf.body)
	digest := hex.EncodeToString(sum[:])
	if pdf.status != http.StatusOK || pdf.header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(pdf.body), "%PDF-") {
		t.Fatalf("GET %s: %d %v, %d bytes; want the PDF", url, pdf.status, pdf.header, len(pdf.body))
	}
	var v struct {
		SHA256 string `json:"sha256"`
	}
	a := get(t, s, "/v1/certificates/"+id)
	if err := json.Unmarshal(a.body, &v); err != nil || a.status != http.StatusOK || v.SHA256 != digest {
		t.Fatalf("verify %s: %d %s (%v); want the PDF's digest %s", id, a.status, a.body, err, digest)
	}
	return digest
}

// readyBlobStore is the blob store's entry of /readyz, and the process's status code.
func readyBlobStore(t *testing.T, s *server) (int, string) {
	t.Helper()
	a := get(t, s, "/readyz")
	var r struct {
		Checks map[string]struct {
			Status string `json:"status"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("/readyz: %s (%v)", a.body, err)
	}
	return a.status, r.Checks["blob_store"].Status
}

// A course completed through the API gets its certificate in the S3 bucket, and the PDF the
// API serves from there is the one the log recorded.
func TestServeIssuesCertificatesOnS3(t *testing.T) {
	t.Parallel()
	b := tests3.NewBucket(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := launch(t, dir, &logTracker{}, s3Env(b), func(string) bool { return false })
	if status, check := readyBlobStore(t, s); status != http.StatusOK || check != "ok" {
		t.Errorf("/readyz: %d, blob_store %q; want 200 and ok", status, check)
	}
	id, url := waitCertificate(t, s, completeGo(s), 30*time.Second)
	digest := checkPDF(t, s, id, url)

	// In the bucket, under the key the README names, and nothing under the data dir.
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := s3.New(s3.Options{Region: tests3.Region, BaseEndpoint: aws.String(b.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, ""), HTTPClient: &http.Client{Transport: transport}})
	key := "certificates/" + id + "/" + digest + ".pdf"
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s from the bucket: %v", key, err)
	}
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	if sum := sha256.Sum256(body); err != nil || hex.EncodeToString(sum[:]) != digest {
		t.Errorf("the bucket's %s: %d bytes, %v; want the PDF served", key, len(body), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs")); !os.IsNotExist(err) {
		t.Errorf("a blobs directory in the data dir (%v); want the PDFs in the bucket alone", err)
	}
	s.stop()
}

// While the S3 store is down the process stays ready, the store degraded, and the certificate
// waits; once the store is back the job's next attempt issues it. A PDF asked for while the
// store is down is a 503.
func TestCertificatesWaitForS3(t *testing.T) {
	t.Parallel()
	srv := tests3.Start(t)
	b := srv.NewBucket(t)
	srv.Stop()
	dir := filepath.Join(t.TempDir(), "data")
	s := launch(t, dir, &logTracker{}, s3Env(b), func(line string) bool { return strings.Contains(line, "store certificate") })
	if status, check := readyBlobStore(t, s); status != http.StatusOK || check != "degraded" {
		t.Errorf("/readyz with the store down: %d, blob_store %q; want 200 and degraded", status, check)
	}
	done := completeGo(s)
	failed := func() bool {
		var jobs struct {
			Items []struct {
				Errors []struct {
					Error string `json:"error"`
				} `json:"errors"`
			} `json:"items"`
		}
		a := get(t, s, "/v1/admin/jobs?kind=certificate&state=retryable")
		if err := json.Unmarshal(a.body, &jobs); err != nil || a.status != http.StatusOK {
			t.Fatalf("the certificate jobs: %d %s (%v)", a.status, a.body, err)
		}
		return len(jobs.Items) == 1 && len(jobs.Items[0].Errors) > 0 && strings.Contains(jobs.Items[0].Errors[0].Error, "store certificate")
	}
	for deadline := time.Now().Add(30 * time.Second); !failed(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt to store the certificate after 30s\n%s", s.logs)
		}
	}
	srv.Restart(t)
	// The first retry comes 5 to 10 s after the failure (certificateBackoff).
	id, url := waitCertificate(t, s, done, 60*time.Second)
	checkPDF(t, s, id, url)
	if status, check := readyBlobStore(t, s); status != http.StatusOK || check != "ok" {
		t.Errorf("/readyz with the store back: %d, blob_store %q; want 200 and ok", status, check)
	}
	// Down again: the PDF's route says to come back later.
	srv.Stop()
	if a := get(t, s, url); a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Errorf("GET %s with the store down: %d %v; want 503 with Retry-After", url, a.status, a.header)
	}
	s.stop()
}
