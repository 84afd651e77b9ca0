package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The graphql phase's client counts a GraphQL answer with errors as an error, though its
// status is 200, and sends the same page both ways.
func TestCatalogClient(t *testing.T) {
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.String() == catalogRESTPath:
			w.Write([]byte(`{"items":[],"nextCursor":null}`))
		case r.Method == http.MethodPost && r.URL.Path == "/graphql" && fail:
			w.Write([]byte(`{"errors":[{"message":"no","extensions":{"code":"INTERNAL"}}],"data":null}`))
		case r.Method == http.MethodPost && r.URL.Path == "/graphql":
			w.Write([]byte(`{"data":{"courses":{"nodes":[]}}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	a := newAPI(srv.URL, 1)
	defer a.close()
	if o, _, err := (catalogClient{api: a}).send(t.Context()); o != opCatalogREST || err != nil {
		t.Errorf("REST: %v %v", o, err)
	}
	gql := catalogClient{api: a, graphql: []byte(`{"query":"{ courses { nodes { id } } }"}`)}
	if o, n, err := gql.send(t.Context()); o != opCatalogGraphQL || err != nil || n == 0 {
		t.Errorf("GraphQL: %v %d %v", o, n, err)
	}
	fail = true
	if _, _, err := gql.send(t.Context()); !errors.As(err, new(*answerError)) {
		t.Errorf("GraphQL with errors: %v, want an answer error", err)
	}
}
