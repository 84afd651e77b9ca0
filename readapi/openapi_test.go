package readapi_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/readapi"
)

// The email addresses the server takes are exactly those the document declares: a client that
// validates against the document never meets a refusal it could not foresee, nor the reverse.
func TestOpenAPIDeclaresTheEmailPatternTheServerTakes(t *testing.T) {
	rec := httptest.NewRecorder()
	readapi.ServeOpenAPI(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Format    string `json:"format"`
					Pattern   string `json:"pattern"`
					MaxLength int    `json:"maxLength"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{"RegisterUserRequest", "UpdateUserRequest"} {
		email := doc.Components.Schemas[schema].Properties["email"]
		if email.Pattern != user.EmailPattern || email.Format != "email" || email.MaxLength != 254 {
			t.Errorf("%s.email = %+v; want format email, maxLength 254 and the server's pattern %s", schema, email, user.EmailPattern)
		}
	}
}
