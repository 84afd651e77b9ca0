package graphql_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/readapi/graphql"
)

// uploadRequest is a multipart request (the GraphQL multipart request spec) of uploadCourseImage
// with file, as a.
func uploadRequest(t *testing.T, f *fixture, a domain.Actor, file []byte) (int, gqlResponse) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("operations", `{"query":"mutation($f: Upload!) { uploadCourseImage(input: {courseId: \"c01\", image: $f}) { position } }","variables":{"f":null}}`)
	w.WriteField("map", `{"0":["variables.f"]}`)
	fw, _ := w.CreateFormFile("0", "a.jpg")
	fw.Write(file)
	w.Close()
	req, err := http.NewRequest(http.MethodPost, f.server.URL+"/graphql", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	caller, _ := json.Marshal(a)
	req.Header.Set("X-Test-Caller", string(caller))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%d, not a GraphQL answer: %v", res.StatusCode, err)
	}
	return res.StatusCode, out
}

// A multipart request is refused before its body is read where it could never be answered:
// uploads off, a role that may upload nothing, a body past the cap. The command side (absent
// here) is never reached.
func TestUploadsAreGuardedBeforeTheBodyIsRead(t *testing.T) {
	off := newFixture(t, graphql.Options{})
	if status, r := uploadRequest(t, off, teacher1, []byte("x")); status != http.StatusUnsupportedMediaType || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeUnsupported {
		t.Errorf("an upload where uploads are off: %d %+v; want 415 %s", status, r.Errors, graphql.CodeUnsupported)
	}
	on := newFixture(t, graphql.Options{MaxUploadBytes: 1000})
	for _, a := range []domain.Actor{learner1, auditor} {
		if status, r := uploadRequest(t, on, a, []byte("x")); status != http.StatusForbidden || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeForbidden {
			t.Errorf("an upload by a %s: %d %+v; want 403 %s", a.Role, status, r.Errors, graphql.CodeForbidden)
		}
	}
	if status, r := uploadRequest(t, on, teacher1, make([]byte, 1000+graphql.MaxBodyBytes)); status != http.StatusRequestEntityTooLarge || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeTooLarge {
		t.Errorf("an upload past the cap: %d %+v; want 413 %s", status, r.Errors, graphql.CodeTooLarge)
	}
	// Within the cap, the transport reads it and the mutation answers that no command runs here.
	if status, r := uploadRequest(t, on, teacher1, []byte("x")); status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeUnavailable {
		t.Errorf("an upload within the cap: %d %+v; want %s (no command side)", status, r.Errors, graphql.CodeUnavailable)
	}
}
