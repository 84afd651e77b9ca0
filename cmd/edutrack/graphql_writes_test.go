package main

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/imagefile/imagefiletest"
)

// gqlAs sends one operation with extra headers (name, value, ...) as caller, who may be "" (no
// token), and answers the HTTP status beside the answer.
func gqlAs(t *testing.T, s *server, caller, query string, vars map[string]any, headers ...string) (int, gqlAnswer) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if caller != "" {
		req.Header.Set("Authorization", caller)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return doGQL(t, req)
}

func doGQL(t *testing.T, req *http.Request) (int, gqlAnswer) {
	t.Helper()
	resp, err := fileClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a gqlAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, a
}

// uploadImageGQL sends uploadCourseImage as a multipart request (the GraphQL multipart
// request spec) with file as its image.
func uploadImageGQL(t *testing.T, s *server, caller, courseID string, file []byte, headers ...string) (int, gqlAnswer) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": `mutation($c: ID!, $f: Upload!) { uploadCourseImage(input: {courseId: $c, image: $f}) { id version position } }`,
		"variables": map[string]any{"c": courseID, "f": nil}})
	w.WriteField("operations", string(ops))
	w.WriteField("map", `{"0": ["variables.f"]}`)
	fw, _ := w.CreateFormFile("0", "photo.jpg")
	fw.Write(file)
	w.Close()
	req, err := http.NewRequest(http.MethodPost, s.base+"/graphql", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", caller)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return doGQL(t, req)
}

// wantCode checks that a answers one error with code (and field, if not "").
func wantCode(t *testing.T, what string, a gqlAnswer, code, field string) {
	t.Helper()
	if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != code || (field != "" && a.Errors[0].Extensions["field"] != field) {
		t.Errorf("%s: %+v; want one %s error naming %q", what, a.Errors, code, field)
	}
}

// The module files and the course image through GraphQL: the mutations of their REST routes,
// under the same checks, and the read fields answering what REST answers, file links under the
// route's rules and image URLs rewritten to EDUTRACK_MEDIA_BASE_URL alike.
func TestGraphQLModuleFilesAndCourseImage(t *testing.T) {
	t.Parallel()
	env := fileEnv()
	env["EDUTRACK_FILE_URL_KEY"] = "a-file-url-key-for-tests-only-32-bytes"
	env["EDUTRACK_IMAGE_MAX_BYTES"] = "3000000"
	env["EDUTRACK_MEDIA_BASE_URL"] = "https://cdn.example.com/edu/"
	s := launch(t, filepath.Join(t.TempDir(), "data"), &logTracker{}, env, func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ins2", "Alan Kay", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("bob", "Bob Noyce", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)

	pdf := samplePDF(5000)
	start := `mutation($in: StartModuleFileUploadInput!) { startModuleFileUpload(input: $in) { id version position fileId uploadUrl expiresAt } }`
	declared := func(name string, b []byte) map[string]any {
		return map[string]any{"in": map[string]any{"courseId": "go", "moduleId": "m1", "name": name, "type": "application/pdf", "size": len(b), "sha256": digest(b)}}
	}
	ticket := func(a gqlAnswer) uploadTicket {
		t.Helper()
		if len(a.Errors) > 0 {
			t.Fatalf("startModuleFileUpload: %+v", a.Errors)
		}
		tk := decodeStrict[uploadTicket](t, a.Data["startModuleFileUpload"])
		if tk.FileID == "" || tk.ID != tk.FileID || tk.UploadURL == "" || tk.Position == 0 {
			t.Fatalf("startModuleFileUpload answered %+v", tk)
		}
		return tk
	}

	t.Run("a declared file whose bytes differ is refused naming the field, recording nothing", func(t *testing.T) {
		other := bytes.Clone(pdf)
		other[len(other)-1] ^= 1
		// Two such files: one completed through GraphQL, the other through REST.
		var ids []string
		for _, name := range []string{"wrong.pdf", "wrong-too.pdf"} {
			_, a := gqlAs(t, s, ins, start, declared(name, pdf))
			tk := ticket(a)
			if c := call(t, s, http.MethodPut, tk.UploadURL, "", "application/pdf", other); c.status != http.StatusOK {
				t.Fatalf("PUT: %d %s", c.status, c.body)
			}
			ids = append(ids, tk.FileID)
		}
		head := logHead(t, s)
		_, a := gqlAs(t, s, ins, `mutation($in: ModuleFileInput!) { completeModuleFileUpload(input: $in) { position } }`,
			map[string]any{"in": map[string]any{"courseId": "go", "moduleId": "m1", "fileId": ids[0]}})
		wantCode(t, "completing a file with other bytes", a, "UNPROCESSABLE", "sha256")
		if rest := complete(t, s, ids[1]); rest.status != http.StatusUnprocessableEntity || !strings.Contains(string(rest.body), `"field":"sha256"`) {
			t.Errorf("REST's answer to the same: %d %s; want 422 naming sha256", rest.status, rest.body)
		}
		if h := logHead(t, s); h != head {
			t.Errorf("the refusals appended %d events", h-head)
		}
		s.log.pos = head
	})

	var fileID string
	t.Run("a file declared, uploaded and completed through mutations", func(t *testing.T) {
		_, a := gqlAs(t, s, bearer("ins2", domain.Instructor), start, declared("x.pdf", pdf))
		wantCode(t, "another instructor declaring a file", a, "NOT_FOUND", "")
		_, a = gqlAs(t, s, ins, start, declared("Week 1 slides.pdf", pdf))
		tk := ticket(a)
		if c := call(t, s, http.MethodPut, tk.UploadURL, "", "application/pdf", pdf); c.status != http.StatusOK {
			t.Fatalf("PUT: %d %s", c.status, c.body)
		}
		_, a = gqlAs(t, s, ins, `mutation($in: ModuleFileInput!) { completeModuleFileUpload(input: $in) { position } }`,
			map[string]any{"in": map[string]any{"courseId": "go", "moduleId": "m1", "fileId": tk.FileID}})
		if len(a.Errors) > 0 {
			t.Fatalf("completeModuleFileUpload: %+v", a.Errors)
		}
		s.log.pos = logHead(t, s)
		fileID = tk.FileID
	})
	if fileID == "" {
		t.FailNow()
	}

	t.Run("the module's files read as REST reads them, the link under the route's rules", func(t *testing.T) {
		var rest struct {
			Modules []struct {
				Files []map[string]any `json:"files"`
			} `json:"modules"`
		}
		if err := json.Unmarshal(get(t, s, "/v1/courses/go?minPosition="+itoa(s.log.pos)).body, &rest); err != nil || len(rest.Modules) != 1 {
			t.Fatalf("REST details: %v", err)
		}
		q := `query($p: Uint64) { course(id: "go", minPosition: $p) { modules { files { id name type size sha256 path downloadUrl } } } }`
		route := filesPath + "/" + fileID
		for _, c := range []struct {
			who, auth string
		}{
			{"the enrolled learner", bearer("ada", domain.Learner)},
			{"a learner not enrolled", bearer("bob", domain.Learner)},
			{"the course's instructor", ins},
			{"another instructor", bearer("ins2", domain.Instructor)},
			{"an admin", bearer("root", domain.Admin)},
		} {
			byREST := call(t, s, http.MethodGet, route+"?minPosition="+itoa(s.log.pos), c.auth, "", nil)
			_, a := gqlAs(t, s, c.auth, q, map[string]any{"p": s.log.pos})
			var got struct {
				Modules []struct {
					Files []map[string]any `json:"files"`
				} `json:"modules"`
			}
			if err := json.Unmarshal(a.Data["course"], &got); err != nil || len(got.Modules) != 1 || len(got.Modules[0].Files) != 1 {
				t.Errorf("%s: %s %+v", c.who, a.Data["course"], a.Errors)
				continue
			}
			f := got.Modules[0].Files[0]
			link := f["downloadUrl"]
			delete(f, "downloadUrl")
			if f["path"] != route {
				t.Errorf("%s: path %v, want %s", c.who, f["path"], route)
			}
			delete(f, "path")
			if !reflect.DeepEqual(f, rest.Modules[0].Files[0]) {
				t.Errorf("%s: the file %v, REST's %v", c.who, f, rest.Modules[0].Files[0])
			}
			switch byREST.status {
			case http.StatusFound:
				u, _ := link.(string)
				if len(a.Errors) > 0 || u == "" {
					t.Errorf("%s: REST redirects, GraphQL answers %v %+v", c.who, link, a.Errors)
					continue
				}
				// The link is one the route could have given: it fetches the bytes.
				if got := call(t, s, http.MethodGet, u, "", "", nil); got.status != http.StatusOK || !bytes.Equal(got.body, pdf) {
					t.Errorf("%s: the link answers %d", c.who, got.status)
				}
			case http.StatusNotFound:
				if link != nil {
					t.Errorf("%s: REST answers 404, GraphQL a link", c.who)
				}
				wantCode(t, c.who, a, "NOT_FOUND", "")
			default:
				t.Errorf("%s: REST answers %d", c.who, byREST.status)
			}
		}
		// An auditor reads no course in either API, let alone its files.
		aud := bearer("aud", domain.Auditor)
		if r := call(t, s, http.MethodGet, "/v1/courses/go", aud, "", nil); r.status != http.StatusForbidden {
			t.Errorf("an auditor's REST read of the course: %d; want 403", r.status)
		}
		_, a := gqlAs(t, s, aud, q, map[string]any{"p": s.log.pos})
		wantCode(t, "an auditor's read of the files", a, "FORBIDDEN", "")
	})

	t.Run("the course image is uploaded with the REST upload's checks", func(t *testing.T) {
		const w, h = 2000, 1500
		photo := imagefiletest.Photo(w, h)
		head := logHead(t, s)
		for _, c := range []struct {
			what, auth, course string
			file               []byte
			status             int
			code, field        string
		}{
			{"a learner's upload, refused before its body is read", bearer("ada", domain.Learner), "go", photo, http.StatusForbidden, "FORBIDDEN", ""},
			{"another instructor's", bearer("ins2", domain.Instructor), "go", photo, http.StatusOK, "NOT_FOUND", ""},
			{"to no course", ins, "nope", photo, http.StatusOK, "NOT_FOUND", ""},
			{"a ZIP", ins, "go", []byte("PK\x03\x04 not a picture"), http.StatusOK, "UNSUPPORTED_MEDIA_TYPE", "image"},
			{"a truncated JPEG", ins, "go", photo[:len(photo)/2], http.StatusOK, "UNPROCESSABLE", "image"},
			{"a 50,000×50,000 PNG", ins, "go", imagefiletest.PNGBomb(50_000, 50_000), http.StatusOK, "UNPROCESSABLE", "image"},
			{"3 MB and one byte", ins, "go", make([]byte, 3000001), http.StatusOK, "PAYLOAD_TOO_LARGE", "image"},
			{"a request past the cap", ins, "go", make([]byte, 3000001+64<<10), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "image"},
		} {
			status, a := uploadImageGQL(t, s, c.auth, c.course, c.file)
			if status != c.status {
				t.Errorf("%s: HTTP %d, want %d", c.what, status, c.status)
			}
			wantCode(t, c.what, a, c.code, c.field)
		}
		if now := logHead(t, s); now != head {
			t.Errorf("the refused uploads appended %d events", now-head)
		}
		status, a := uploadImageGQL(t, s, ins, "go", photo, "Idempotency-Key", "img-1")
		if status != http.StatusOK || len(a.Errors) > 0 {
			t.Fatalf("the upload: %d %+v", status, a.Errors)
		}
		var res struct{ Position uint64 }
		json.Unmarshal(a.Data["uploadCourseImage"], &res)
		s.log.pos = res.Position
		if _, again := uploadImageGQL(t, s, ins, "go", photo, "Idempotency-Key", "img-1"); string(again.Data["uploadCourseImage"]) != string(a.Data["uploadCourseImage"]) {
			t.Errorf("the upload again with its key: %s %+v; want %s", again.Data["uploadCourseImage"], again.Errors, a.Data["uploadCourseImage"])
		}
		img := waitImage(t, s, "go", res.Position)
		if !strings.HasPrefix(img.Formats["webp"][0].URL, "https://cdn.example.com/edu/") {
			t.Fatalf("REST's image URL %s is not under the media base URL", img.Formats["webp"][0].URL)
		}
		for _, q := range []string{
			`query($p: Uint64) { course(id: "go", minPosition: $p) { image { status width height formats { webp { url width height } jpeg { url width height } } } } }`,
			`query($p: Uint64) { courses(minPosition: $p) { nodes { image { status width height formats { webp { url width height } jpeg { url width height } } } } } }`,
		} {
			_, a := gqlAs(t, s, bearer("bob", domain.Learner), q, map[string]any{"p": logHead(t, s)})
			raw := a.Data["course"]
			if raw == nil {
				var l struct{ Nodes []json.RawMessage }
				json.Unmarshal(a.Data["courses"], &l)
				if len(l.Nodes) == 1 {
					raw = l.Nodes[0]
				}
			}
			var got struct{ Image *courseImage }
			if err := json.Unmarshal(raw, &got); err != nil || len(a.Errors) > 0 || !reflect.DeepEqual(got.Image, img) {
				t.Errorf("GraphQL's image %s %+v; REST's %+v", raw, a.Errors, img)
			}
		}
	})
}

// An Idempotency-Key on a GraphQL mutation binds it as it binds a REST request, in the same
// index: a retry answers the first result and appends nothing, another input is refused with
// REST's 422, and a request of several mutations under one key is refused whole.
func TestGraphQLIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	admin := bearer(testAdmin, domain.Admin)
	mutate(t, s, admin, "registerUser", `{id: "ki", name: "Grace", email: "ki@example.com", role: "instructor"}`)
	create := `mutation($t: String!) { createCourse(input: {title: $t, category: "cs", level: "beginner", instructorId: "ki"}) { id version position } }`
	teacher := bearer("ki", domain.Instructor)
	_, first := gqlAs(t, s, teacher, create, map[string]any{"t": "Keys"}, "Idempotency-Key", "k-1")
	if len(first.Errors) > 0 {
		t.Fatal(first.Errors)
	}
	head := logHead(t, s)
	_, again := gqlAs(t, s, teacher, create, map[string]any{"t": "Keys"}, "Idempotency-Key", "k-1")
	if string(again.Data["createCourse"]) != string(first.Data["createCourse"]) || len(again.Errors) > 0 {
		t.Errorf("the retry: %s %+v; want the first answer %s", again.Data["createCourse"], again.Errors, first.Data["createCourse"])
	}
	_, other := gqlAs(t, s, teacher, create, map[string]any{"t": "Other"}, "Idempotency-Key", "k-1")
	wantCode(t, "the key with another input", other, "UNPROCESSABLE", "Idempotency-Key")
	// REST answers the same key with another request alike: one index binds both.
	r := s.send(http.MethodPost, "/v1/courses", "application/json", []byte(`{"title":"Rest","category":"cs","level":"beginner","instructorId":"ki"}`),
		"Authorization", teacher, "Idempotency-Key", "k-1")
	if r.status != http.StatusUnprocessableEntity {
		t.Errorf("REST with the key GraphQL used: %d %s; want 422", r.status, r.body)
	}
	_, two := gqlAs(t, s, admin, `mutation { a: publishCourse(input: {id: "x"}) { position } b: archiveCourse(input: {id: "x"}) { position } }`, nil,
		"Idempotency-Key", "k-2")
	if len(two.Errors) != 2 || two.Errors[0].Extensions["code"] != "BAD_USER_INPUT" || two.Errors[0].Extensions["field"] != "Idempotency-Key" {
		t.Errorf("two mutations under one key: %+v; want each refused naming Idempotency-Key", two.Errors)
	}
	_, long := gqlAs(t, s, teacher, create, map[string]any{"t": "Keys"}, "Idempotency-Key", strings.Repeat("k", 129))
	wantCode(t, "a key too long", long, "BAD_USER_INPUT", "Idempotency-Key")
	if h := logHead(t, s); h != head {
		t.Errorf("the retry and the refusals appended %d events", h-head)
	}
	s.log.pos = head
}
