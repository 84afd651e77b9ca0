package graphql_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edutrack/edutrack/readapi/graphql"
)

// Each limit refuses the operation with a clear error before any field runs: no read of the
// store is made.
func TestLimitsRefuseBeforeAnyWork(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(1)
	deep := `{ me { learner { enrollments { course { modules { id } } } } } }` // 6: within
	// Past the depth before validation: no valid query of this schema goes past 10 yet.
	tooDeep := "query { " + strings.Repeat("courses { nodes { ", 6) + "id" + strings.Repeat(" } }", 6) + " }"
	var aliases strings.Builder
	aliases.WriteString("{ ")
	for i := range graphql.MaxAliases + 1 {
		fmt.Fprintf(&aliases, "a%d: me { id } ", i)
	}
	aliases.WriteString("}")
	cases := []struct {
		name, query, code, message string
	}{
		{"depth", tooDeep, graphql.CodeLimit, "deep"},
		{"depth through fragments", `fragment C on Course { roster { nodes { learnerId } } } fragment N on CourseConnection { nodes { ...C } }
			query { courses { ...N } me { learner { enrollments { course { roster { edges { node { learnerId } } } } } } } }`, "", ""},
		{"complexity", `{ courses(first: 100) { nodes { id roster(first: 100) { nodes { learnerId name status } } } } }`, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"aliases", aliases.String(), graphql.CodeLimit, "aliases"},
		{"query size", "{ me { id } }" + strings.Repeat(" ", graphql.MaxQueryBytes), graphql.CodeLimit, "bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.roundTrips()
			r := f.query(admin, c.query, nil)
			if c.code == "" { // within the limits
				if len(r.Errors) > 0 {
					t.Fatalf("errors %+v", r.Errors)
				}
				return
			}
			if len(r.Errors) != 1 || r.Errors[0].code() != c.code || !strings.Contains(r.Errors[0].Message, c.message) || string(r.Data) != "" && string(r.Data) != "null" {
				t.Errorf("answer %s %+v, want one %s error saying %q and no data", r.Data, r.Errors, c.code, c.message)
			}
			if n := f.roundTrips() - before; n != 0 {
				t.Errorf("%d reads of the store before the refusal", n)
			}
		})
	}
	if r := f.query(learner1, deep, nil); len(r.Errors) > 0 {
		t.Errorf("a 6-deep screen query: %+v", r.Errors)
	}

	t.Run("a batch of operations", func(t *testing.T) {
		status, r := f.send(admin, http.MethodPost, "/graphql", []byte(`[{"query":"{ me { id } }"},{"query":"{ me { role } }"}]`))
		if status != http.StatusBadRequest || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeBatch {
			t.Errorf("%d %+v, want 400 BATCH_REFUSED", status, r.Errors)
		}
	})
	t.Run("a body past its limit", func(t *testing.T) {
		status, r := f.send(admin, http.MethodPost, "/graphql", []byte(`{"query":"{ me { id } }","variables":{"x":"`+strings.Repeat("x", graphql.MaxBodyBytes)+`"}}`))
		if status != http.StatusRequestEntityTooLarge || len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeLimit {
			t.Errorf("%d %+v, want 413 LIMIT_EXCEEDED", status, r.Errors)
		}
	})
}

func TestIntrospectionIsForAdminsOrWhenConfigured(t *testing.T) {
	const q = `{ __schema { queryType { name } } }`
	f := newFixture(t, graphql.Options{})
	if r := f.query(admin, q, nil); string(r.Data) != `{"__schema":{"queryType":{"name":"Query"}}}` {
		t.Errorf("admin: %s %+v", r.Data, r.Errors)
	}
	if r := f.query(learner1, q, nil); len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeForbidden {
		t.Errorf("learner: %s %+v, want introspection refused", r.Data, r.Errors)
	}
	open := newFixture(t, graphql.Options{Introspection: true})
	if r := open.query(learner1, q, nil); len(r.Errors) > 0 {
		t.Errorf("learner with introspection on: %+v", r.Errors)
	}
}

func TestAutomaticPersistedQueriesAnswerAHashOverGET(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(2)
	const q = `query Catalog { courses(first: 1) { nodes { id } } }`
	sum := sha256.Sum256([]byte(q))
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":"%s"}}`, hex.EncodeToString(sum[:]))
	get := "/graphql?extensions=" + url.QueryEscape(ext)
	if _, r := f.send(learner1, http.MethodGet, get, nil); len(r.Errors) != 1 || r.Errors[0].Message != "PersistedQueryNotFound" {
		t.Fatalf("an unknown hash: %+v, want PersistedQueryNotFound", r.Errors)
	}
	if _, r := f.post(learner1, map[string]any{"query": q, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}}); len(r.Errors) > 0 {
		t.Fatalf("registering: %+v", r.Errors)
	}
	_, r := f.send(learner1, http.MethodGet, get, nil)
	if diff := cmp.Diff(`{"courses":{"nodes":[{"id":"c02"}]}}`, string(r.Data)); diff != "" || len(r.Errors) > 0 {
		t.Errorf("by hash (-want +got):\n%s %+v", diff, r.Errors)
	}
	if n := testutil.ToFloat64(metricOf(t, f, "Catalog", "ok")); n != 2 {
		t.Errorf("edutrack_graphql_operations_total{operation=Catalog,outcome=ok} = %v, want 2", n)
	}
}

func TestErrorsNeverCarryInternals(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(1)
	// A document the store holds but cannot decode: an internal failure.
	f.put("courses", "course_details", doc("broken", 300, map[string]any{"modules": "not a list"}))
	r := f.query(admin, `{ course(id: "broken") { id } }`, nil)
	if len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeInternal || r.Errors[0].Message != "internal error" {
		t.Errorf("%+v, want INTERNAL saying only internal error", r.Errors)
	}
}
