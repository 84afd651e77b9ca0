package problem_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/internal/problem"
)

// decode runs DecodeJSON on a JSON body into a value of body's shape.
func decode(data string) (body, error) {
	r := httptest.NewRequest(http.MethodPost, "/v1/users", strings.NewReader(data))
	r.Header.Set("Content-Type", "application/json")
	var v body
	err := problem.DecodeJSON(httptest.NewRecorder(), r, &v, 1<<10)
	return v, err
}

// A body must be exactly what the route takes: a key given twice, or spelled with other
// letter case than the route's field, is refused with a 400 naming it, not silently merged.
func TestDecodeJSONRefusesWhatIsNotExactlyTheBody(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"a_key_given_twice", `{"name":"Ada","name":"Eve"}`, "name"},
		{"a_key_given_twice_after_others", `{"id":"a","name":"Ada","id":"b"}`, "id"},
		{"a_key_in_other_case", `{"Name":"Ada"}`, "Name"},
		{"a_key_in_capitals", `{"id":"a","NAME":"Ada"}`, "NAME"},
		{"an_unknown_key", `{"role":"admin"}`, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.body)
			d := problem.From(err)
			if err == nil || d.Status != http.StatusBadRequest || d.Field != tc.field {
				t.Errorf("DecodeJSON(%s) = %v (%+v); want a 400 naming %q", tc.body, err, d, tc.field)
			}
		})
	}
	t.Run("takes_the_same_keys_in_nested_objects_and_exact_case", func(t *testing.T) {
		v, err := decode(`{"id":"a","name":"Ada","details":{"A":true},"tags":["x","x"]}`)
		if err != nil || *v.ID != "a" || *v.Name != "Ada" || !v.Details.A {
			t.Errorf("DecodeJSON = %+v, %v", v, err)
		}
	})
}

func TestNoBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		chunk  bool
		refuse bool
	}{
		{"takes_no_body", "", false, false},
		{"refuses_a_body", `{"force":true}`, false, true},
		{"refuses_a_chunked_body", `{}`, true, true},
		{"takes_an_empty_chunked_body", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/courses/go/publish", bytes.NewReader([]byte(tc.body)))
			if tc.chunk {
				r.ContentLength = -1
			}
			err := problem.NoBody(r)
			if d := problem.From(err); (err != nil) != tc.refuse || (tc.refuse && d.Status != http.StatusBadRequest) {
				t.Errorf("NoBody with %q: %v (%+v), want refused %v with 400", tc.body, err, d, tc.refuse)
			}
		})
	}
}
