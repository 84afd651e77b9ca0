package problem_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/internal/problem"
)

// body has the shape of the command bodies: optional strings, a nested object, a list.
type body struct {
	ID      *string           `json:"id"`
	Name    *string           `json:"name"`
	Count   *int              `json:"count"`
	Tags    []string          `json:"tags"`
	Details *struct{ A bool } `json:"details"`
}

// FuzzDecodeJSON feeds DecodeJSON arbitrary bodies. It must never panic; whatever it refuses it
// refuses as the client's fault (400, 413 or 415, never a 500 whose text reaches the log); and
// whatever it accepts holds only the known fields, so that encoding it and decoding it again
// gives it back. The seed corpus is in testdata/fuzz/FuzzDecodeJSON; run it with
// go test -fuzz=FuzzDecodeJSON ./problem.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"id":"a","name":"Ada"}`, `{"ID":"a"}`, `{"id":1}`, `{"name":"x","role":"admin"}`, `{}{}`, `[]`,
		`{"tags":["a",null]}`, `{"details":{"A":true,"B":1}}`, `{"count":1e400}`, "{\"name\":\"\xff\"}", `null`, ``} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{"id":"a"}`), "text/plain")
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, data []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/users", bytes.NewReader(data))
		r.Header.Set("Content-Type", contentType)
		var v body
		err := problem.DecodeJSON(httptest.NewRecorder(), r, &v, limit)
		if err != nil {
			var pe *problem.Error
			var me *http.MaxBytesError
			switch {
			case errors.As(err, &me):
				if len(data) <= limit {
					t.Fatalf("a body of %d bytes refused as over the %d limit", len(data), limit)
				}
			case !errors.As(err, &pe):
				t.Fatalf("refused with %T %v, want a problem", err, err)
			case pe.Status != http.StatusBadRequest && pe.Status != http.StatusUnsupportedMediaType:
				t.Fatalf("refused with status %d, want 400 or 415", pe.Status)
			}
			if d := problem.From(err); d.Status >= 500 {
				t.Fatalf("refused as a server failure: %+v", d)
			}
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		r = httptest.NewRequest(http.MethodPost, "/v1/users", bytes.NewReader(again))
		r.Header.Set("Content-Type", "application/json")
		var back body
		if err := problem.DecodeJSON(httptest.NewRecorder(), r, &back, limit); err != nil {
			t.Fatalf("decode %s again: %v", again, err)
		}
		if diff := cmp.Diff(v, back); diff != "" {
			t.Fatalf("round trip of %q (-first +again):\n%s", data, diff)
		}
	})
}
