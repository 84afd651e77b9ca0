package compress_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/internal/compress"
)

// doc answers a JSON document with a strong ETag, and 304 when If-None-Match names it, as the
// read routes do.
func doc(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"7"`)
		if m := r.Header.Get("If-None-Match"); strings.Contains(m, `"7"`) || m == "*" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
}

func TestAGzipAnswerHasItsOwnETag(t *testing.T) {
	mw, err := compress.Middleware(0)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"title":"` + strings.Repeat("Go ", 100) + `"}`
	h := mw(doc(body))
	get := func(acceptGzip bool, ifNoneMatch string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/courses/go", nil)
		if acceptGzip {
			r.Header.Set("Accept-Encoding", "gzip")
		}
		if ifNoneMatch != "" {
			r.Header.Set("If-None-Match", ifNoneMatch)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	plain, gz := get(false, ""), get(true, "")
	if plain.Header().Get("ETag") != `"7"` || plain.Body.String() != body {
		t.Errorf("plain answer: ETag %q, body %q", plain.Header().Get("ETag"), plain.Body.String())
	}
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Header().Get("ETag") != `"7-gzip"` {
		t.Errorf("gzip answer: Content-Encoding %q, ETag %q; want gzip and \"7-gzip\"", gz.Header().Get("Content-Encoding"), gz.Header().Get("ETag"))
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); string(b) != body {
		t.Errorf("gunzipped body %q, want %q", b, body)
	}
	for _, tc := range []struct {
		name    string
		gzip    bool
		tag     string
		status  int
		wantTag string
	}{
		{"the_gzip_tag_revalidates_a_gzip_answer", true, `"7-gzip"`, http.StatusNotModified, `"7-gzip"`},
		{"the_plain_tag_revalidates_a_plain_answer", false, `"7"`, http.StatusNotModified, `"7"`},
		{"the_gzip_tag_among_others_revalidates", true, `"3", "7-gzip"`, http.StatusNotModified, `"7-gzip"`},
		{"another_tag_gets_the_document", true, `"6-gzip"`, http.StatusOK, `"7-gzip"`},
		{"any_tag_revalidates_with_the_tag_of_what_the_client_gets", true, "*", http.StatusNotModified, `"7-gzip"`},
		{"any_tag_revalidates_a_plain_answer_with_the_plain_tag", false, "*", http.StatusNotModified, `"7"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := get(tc.gzip, tc.tag)
			if w.Code != tc.status || w.Header().Get("ETag") != tc.wantTag {
				t.Errorf("If-None-Match %s: %d with ETag %q, want %d with %q", tc.tag, w.Code, w.Header().Get("ETag"), tc.status, tc.wantTag)
			}
		})
	}
}

func TestAcceptEncodingIsReadWithItsQValues(t *testing.T) {
	mw, err := compress.Middleware(0)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(doc(`{"title":"Go"}`))
	for header, gz := range map[string]bool{"gzip": true, "br, gzip;q=0.5": true, "GZIP": true, "*": false, "gzip;q=0": false,
		"gzip; q=0.000": false, "identity": false, "": false} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		r.Header.Set("If-None-Match", "*")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get("ETag") == `"7-gzip"`; got != gz {
			t.Errorf("Accept-Encoding %q: 304 with ETag %q; want the gzip tag %v", header, w.Header().Get("ETag"), gz)
		}
	}
}

// The tag a 304 carries is the tag of the answer a 200 would have been: gzip exactly when gzhttp
// would gzip it.
func TestA304CarriesTheTagOfWhatA200WouldBe(t *testing.T) {
	mw, err := compress.Middleware(0)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(doc(`{"title":"Go"}`))
	for _, header := range []string{"gzip", "br, gzip;q=0.5", "*", "gzip;q=0", "identity"} {
		get := func(match string) *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", header)
			if match != "" {
				r.Header.Set("If-None-Match", match)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		full, revalidated := get(""), get("*")
		if revalidated.Code != http.StatusNotModified || revalidated.Header().Get("ETag") != full.Header().Get("ETag") {
			t.Errorf("Accept-Encoding %q: 200 tagged %q, 304 tagged %q; want the same", header, full.Header().Get("ETag"), revalidated.Header().Get("ETag"))
		}
	}
}
