package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/tests3"
)

// The links' expiry in these tests: long enough for a loaded machine to use a fresh link, short
// enough to wait out once.
const testFileExpiry = 4 * time.Second

// fileEnv are the settings of the module files' tests: a small size cap, short-lived links.
func fileEnv() map[string]string {
	return map[string]string{"EDUTRACK_FILE_MAX_SIZE": "200000", "EDUTRACK_FILE_UPLOAD_EXPIRY": testFileExpiry.String(),
		"EDUTRACK_FILE_DOWNLOAD_EXPIRY": testFileExpiry.String()}
}

func TestModuleFilesOnFiles(t *testing.T) {
	t.Parallel()
	env := fileEnv()
	env["EDUTRACK_FILE_URL_KEY"] = "a-file-url-key-for-tests-only-32-bytes"
	testModuleFiles(t, env, true)
}

func TestModuleFilesOnS3(t *testing.T) {
	t.Parallel()
	b := tests3.NewBucket(t)
	env := fileEnv()
	env["EDUTRACK_BLOB_URL"], env["EDUTRACK_S3_ACCESS_KEY_ID"], env["EDUTRACK_S3_SECRET_ACCESS_KEY"] = b.URL(), b.AccessKey, b.SecretKey
	testModuleFiles(t, env, false)
}

// fileCall is one request of the files' tests, sent as it is: no redirect followed, and no
// Authorization header but auth's.
type fileCall struct {
	status int
	header http.Header
	body   []byte
}

// fileClient sends requests the way a browser or a download tool would, redirects aside.
var fileClient = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func call(t *testing.T, s *server, method, target, auth, contentType string, body []byte) fileCall {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = s.base + target // a link relative to the API
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := fileClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, target, err)
	}
	return fileCall{status: resp.StatusCode, header: resp.Header, body: data}
}

type uploadTicket struct {
	ID        string    `json:"id"`
	Version   uint64    `json:"version"`
	Position  uint64    `json:"position"`
	FileID    string    `json:"fileId"`
	UploadURL string    `json:"uploadUrl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func declare(name, typ string, b []byte) map[string]any {
	return map[string]any{"name": name, "type": typ, "size": len(b), "sha256": digest(b)}
}

const filesPath = "/v1/courses/go/modules/m1/files"

var ins = bearer("ins", domain.Instructor)

// start declares a file as the course's instructor.
func startUpload(t *testing.T, s *server, decl map[string]any) uploadTicket {
	t.Helper()
	body, _ := json.Marshal(decl)
	a := call(t, s, http.MethodPost, filesPath, ins, "application/json", body)
	if a.status != http.StatusCreated {
		t.Fatalf("declare %v: %d %s", decl, a.status, a.body)
	}
	s.log.pos++
	tk := decodeStrict[uploadTicket](t, a.body)
	if tk.FileID == "" || tk.ID != tk.FileID || tk.UploadURL == "" || time.Until(tk.ExpiresAt) <= 0 || time.Until(tk.ExpiresAt) > testFileExpiry+time.Second {
		t.Fatalf("declare %v: %+v; want a file id, an upload URL and when it expires", decl, tk)
	}
	return tk
}

func complete(t *testing.T, s *server, fileID string) fileCall {
	t.Helper()
	return call(t, s, http.MethodPost, filesPath+"/"+fileID+"/complete", ins, "", nil)
}

// samplePDF is a small PDF of n bytes or more.
func samplePDF(n int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n")
	for b.Len() < n {
		b.WriteString("% course material\n")
	}
	b.WriteString("%%EOF\n")
	return b.Bytes()
}

func samplePNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range 32 {
		img.Set(i, i, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pdfZip is a PDF with a ZIP archive after it: a PDF reader sees the PDF, and a ZIP reader,
// which reads from the end, the archive (holding a script here).
func pdfZip(t *testing.T) []byte {
	var b bytes.Buffer
	b.Write(samplePDF(2000))
	zw := zip.NewWriter(&b)
	zw.SetOffset(int64(b.Len()))
	f, err := zw.Create("run.sh")
	if err == nil {
		_, err = f.Write([]byte("#!/bin/sh\necho hello\n"))
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len())); err != nil {
		t.Fatalf("the polyglot is not a ZIP: %v", err)
	}
	return b.Bytes()
}

// tamper changes one character of the signature in a signed URL.
func tamper(t *testing.T, link string) string {
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for _, name := range []string{"signature", "X-Amz-Signature"} {
		if sig := q.Get(name); sig != "" {
			c := "A"
			if sig[0] == 'A' {
				c = "B"
			}
			q.Set(name, c+sig[1:])
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	t.Fatalf("no signature in %s", link)
	return ""
}

func testModuleFiles(t *testing.T, env map[string]string, onFiles bool) {
	dir := filepath.Join(t.TempDir(), "data")
	s := launch(t, dir, &logTracker{}, env, func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ins2", "Alan Kay", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("bob", "Bob Noyce", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("cy", "Cy Young", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("cy")), created, 1)
	s.ok(s.do("DELETE", "/v1/courses/go/enrollments/cy", nil), ok, 1)

	pdf := samplePDF(5000)
	tk := startUpload(t, s, declare("Week 1 slides.pdf", "application/pdf", pdf))
	// Taken now, used once the others have expired.
	late := startUpload(t, s, declare("late.pdf", "application/pdf", pdf))
	issued := time.Now()

	t.Run("an upload URL with a tampered signature is refused", func(t *testing.T) {
		a := call(t, s, http.MethodPut, tamper(t, tk.UploadURL), "", "application/pdf", pdf)
		if a.status != http.StatusForbidden {
			t.Errorf("PUT with a tampered signature: %d %s; want 403", a.status, a.body)
		}
		if onFiles {
			wantFileProblem(t, a, http.StatusForbidden, "signature")
		}
	})
	if onFiles {
		t.Run("the signed route refuses a body over the declared size, and another Content-Type", func(t *testing.T) {
			a := call(t, s, http.MethodPut, tk.UploadURL, "", "application/pdf", append(bytes.Clone(pdf), 'x'))
			wantFileProblem(t, a, http.StatusRequestEntityTooLarge, "")
			a = call(t, s, http.MethodPut, tk.UploadURL, "", "application/zip", pdf)
			wantFileProblem(t, a, http.StatusBadRequest, "Content-Type")
		})
	}

	var fileURL string
	t.Run("a file is uploaded, checked and listed on its module", func(t *testing.T) {
		if a := call(t, s, http.MethodPut, tk.UploadURL, "", "application/pdf", pdf); a.status != http.StatusOK {
			t.Fatalf("PUT the bytes: %d %s", a.status, a.body)
		}
		a := complete(t, s, tk.FileID)
		if a.status != http.StatusOK {
			t.Fatalf("complete: %d %s", a.status, a.body)
		}
		s.log.pos++
		again := complete(t, s, tk.FileID)
		if again.status != http.StatusOK {
			t.Errorf("complete again: %d %s; want 200, changing nothing", again.status, again.body)
		}
		d := get(t, s, fmt.Sprintf("/v1/courses/go?minPosition=%d", s.log.pos))
		var details struct {
			Modules []struct {
				Files []map[string]any `json:"files"`
			} `json:"modules"`
		}
		if err := json.Unmarshal(d.body, &details); err != nil || len(details.Modules) != 1 || len(details.Modules[0].Files) != 1 {
			t.Fatalf("course details: %s (%v); want one file on the module", d.body, err)
		}
		want := map[string]any{"id": tk.FileID, "name": "Week 1 slides.pdf", "type": "application/pdf", "size": float64(len(pdf)), "sha256": digest(pdf)}
		if got := details.Modules[0].Files[0]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the module's file: %v, want %v", got, want)
		}
		fileURL = filesPath + "/" + tk.FileID
	})
	if fileURL == "" {
		t.FailNow()
	}

	var (
		download   string
		downloadAt time.Time
	)
	t.Run("who may fetch the file", func(t *testing.T) {
		for _, c := range []struct {
			who  string
			auth string
			want int
		}{
			{"the enrolled learner", bearer("ada", domain.Learner), http.StatusFound},
			{"a learner not enrolled", bearer("bob", domain.Learner), http.StatusNotFound},
			{"a learner who withdrew", bearer("cy", domain.Learner), http.StatusNotFound},
			{"the course's instructor", ins, http.StatusFound},
			{"another instructor", bearer("ins2", domain.Instructor), http.StatusNotFound},
			{"an admin", bearer("root", domain.Admin), http.StatusFound},
			{"an auditor", bearer("aud", domain.Auditor), http.StatusNotFound},
			{"anyone without a token", "", http.StatusUnauthorized},
		} {
			// minPosition: the roster that says who is enrolled is the learners projection's.
			a := call(t, s, http.MethodGet, fmt.Sprintf("%s?minPosition=%d", fileURL, s.log.pos), c.auth, "", nil)
			if a.status != c.want {
				t.Errorf("%s: %d %s; want %d", c.who, a.status, a.body, c.want)
				continue
			}
			if c.want != http.StatusFound {
				continue
			}
			if cc := a.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("%s: Cache-Control %q; want no-store on a personal link", c.who, cc)
			}
			link := a.header.Get("Location")
			got := call(t, s, http.MethodGet, link, "", "", nil)
			if got.status != http.StatusOK || !bytes.Equal(got.body, pdf) {
				t.Errorf("%s: GET the link: %d, %d bytes; want the file's %d", c.who, got.status, len(got.body), len(pdf))
			}
			if ct, cd := got.header.Get("Content-Type"), got.header.Get("Content-Disposition"); ct != "application/pdf" ||
				cd != `attachment; filename="Week 1 slides.pdf"` {
				t.Errorf("%s: the download's Content-Type %q, Content-Disposition %q; want the declared type, as an attachment named as declared", c.who, ct, cd)
			}
			if onFiles && got.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: the download lacks nosniff", c.who)
			}
			download, downloadAt = link, time.Now()
		}
		a := call(t, s, http.MethodGet, filesPath+"/no-such-file", ins, "", nil)
		wantFileProblem(t, a, http.StatusNotFound, "")
	})

	t.Run("a download link with a tampered signature is refused", func(t *testing.T) {
		if download == "" {
			t.Skip("no download link: see the access test")
		}
		a := call(t, s, http.MethodGet, tamper(t, download), "", "", nil)
		if a.status != http.StatusForbidden || bytes.Contains(a.body, pdf[:100]) {
			t.Errorf("GET with a tampered signature: %d; want 403 and not the file", a.status)
		}
		if onFiles {
			a := call(t, s, http.MethodPut, strings.Replace(download, "method=GET", "method=PUT", 1), "", "application/pdf", pdf)
			wantFileProblem(t, a, http.StatusForbidden, "signature")
			a = call(t, s, http.MethodPut, download, "", "application/pdf", samplePDF(10))
			wantFileProblem(t, a, http.StatusForbidden, "signature")
		}
	})

	t.Run("bytes that differ from the declaration are refused at completion", func(t *testing.T) {
		png := samplePNG(t)
		polyglot := pdfZip(t)
		declared := samplePDF(3000)
		altered := bytes.Clone(declared)
		altered[100] ^= 1
		for _, c := range []struct {
			name  string
			decl  map[string]any
			put   []byte
			field string
		}{
			{"another digest", declare("a.pdf", "application/pdf", declared), altered, "sha256"},
			{"fewer bytes", declare("b.pdf", "application/pdf", declared), declared[:1000], "size"},
			{"a PNG declared as a PDF", declare("c.pdf", "application/pdf", png), png, "type"},
			{"a PDF that is also a ZIP, declared as a PDF", declare("d.pdf", "application/pdf", polyglot), polyglot, "type"},
			{"a PDF that is also a ZIP, declared as a ZIP", declare("d.zip", "application/zip", polyglot), polyglot, "type"},
		} {
			t.Run(c.name, func(t *testing.T) {
				tk := startUpload(t, s, c.decl)
				typ := c.decl["type"].(string)
				if a := call(t, s, http.MethodPut, tk.UploadURL, "", typ, c.put); a.status != http.StatusOK {
					t.Fatalf("PUT: %d %s", a.status, a.body)
				}
				wantFileProblem(t, complete(t, s, tk.FileID), http.StatusUnprocessableEntity, c.field)
				// The refused bytes were deleted: completing again finds none.
				wantFileProblem(t, complete(t, s, tk.FileID), http.StatusConflict, "fileId")
				if a := call(t, s, http.MethodGet, filesPath+"/"+tk.FileID, ins, "", nil); a.status != http.StatusNotFound {
					t.Errorf("GET the refused file: %d; want 404", a.status)
				}
			})
		}
	})

	t.Run("a declaration is checked before any upload", func(t *testing.T) {
		good := declare("ok.pdf", "application/pdf", pdf)
		for _, c := range []struct {
			field, value string
			v            any
		}{{"type", "", "text/html"}, {"size", "", 200001}, {"size", "", 0}, {"sha256", "", strings.Repeat("G", 64)},
			{"name", "", "../../etc/passwd"}} {
			decl := map[string]any{}
			for k, v := range good {
				decl[k] = v
			}
			decl[c.field] = c.v
			body, _ := json.Marshal(decl)
			wantFileProblem(t, call(t, s, http.MethodPost, filesPath, ins, "application/json", body), http.StatusBadRequest, c.field)
		}
		body, _ := json.Marshal(good)
		wantFileProblem(t, call(t, s, http.MethodPost, filesPath, bearer("ins2", domain.Instructor), "application/json", body),
			http.StatusNotFound, "")
		wantFileProblem(t, call(t, s, http.MethodPost, "/v1/courses/go/modules/m9/files", ins, "application/json", body),
			http.StatusNotFound, "moduleId")
		wantFileProblem(t, call(t, s, http.MethodPost, filesPath, bearer("ada", domain.Learner), "application/json", body),
			http.StatusForbidden, "")
	})

	t.Run("expired links are refused", func(t *testing.T) {
		// A signed URL's expiry counts whole seconds: wait a second past it.
		last := issued
		if downloadAt.After(last) {
			last = downloadAt
		}
		time.Sleep(time.Until(last.Add(testFileExpiry + 2*time.Second)))
		if a := call(t, s, http.MethodPut, late.UploadURL, "", "application/pdf", pdf); a.status != http.StatusForbidden {
			t.Errorf("PUT to an expired upload URL: %d %s; want 403", a.status, a.body)
		}
		wantFileProblem(t, complete(t, s, late.FileID), http.StatusConflict, "fileId")
		if download != "" {
			if a := call(t, s, http.MethodGet, download, "", "", nil); a.status != http.StatusForbidden {
				t.Errorf("GET an expired download link: %d; want 403", a.status)
			}
		}
	})
}

// wantFileProblem checks a problem+json answer with this status and field.
func wantFileProblem(t *testing.T, a fileCall, status int, field string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d; body %s", a.status, status, a.body)
		return
	}
	var d struct {
		Status int    `json:"status"`
		Field  string `json:"field"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(a.body, &d); err != nil || a.header.Get("Content-Type") != "application/problem+json" || d.Field != field || d.Detail == "" {
		t.Errorf("problem %s (%v, %s); want field %q and a detail", a.body, err, a.header.Get("Content-Type"), field)
	}
}
