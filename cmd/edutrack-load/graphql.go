package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The graphql phase measures the catalog page both ways on the same data in one run: the REST
// catalog (GET /v1/courses), then the same page and fields as one GraphQL query, each for the
// phase's duration with the same clients. The ratio is GraphQL's rate over REST's.
const (
	catalogRESTPath = "/v1/courses?limit=20"
	catalogQuery    = `query CatalogPage { courses(first: 20) { nodes { id title category level instructor { id name } ` +
		`moduleCount enrollmentCount completionRate publishedAt } pageInfo { hasNextPage endCursor } } }`
)

type catalogClient struct {
	api     *api
	graphql []byte // the request body; nil for REST
}

func (c catalogClient) send(ctx context.Context) (op, int64, error) {
	if c.graphql == nil {
		n, err := c.api.read(ctx, catalogRESTPath)
		return opCatalogREST, n, err
	}
	b, n, err := c.api.send(ctx, http.MethodPost, "/graphql", c.graphql, true)
	if err != nil {
		return opCatalogGraphQL, 0, err
	}
	// A GraphQL answer is 200 even when a field failed: an answer with errors is an error.
	var ans struct {
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Errors) > 0 {
		return opCatalogGraphQL, 0, &answerError{method: http.MethodPost, path: "/graphql", body: string(b[:min(len(b), 200)])}
	}
	return opCatalogGraphQL, n, nil
}

func runGraphQLPhase(ctx context.Context, stdout io.Writer, rep *report, a *api, cfg config) error {
	body, err := json.Marshal(map[string]string{"query": catalogQuery, "operationName": "CatalogPage"})
	if err != nil {
		return err
	}
	var rates [2]float64
	for i, side := range []struct {
		name string
		body []byte
	}{{"catalog REST (GET " + catalogRESTPath + ")", nil}, {"catalog GraphQL (POST /graphql, the same page and fields)", body}} {
		clients := make([]client, cfg.clients)
		for j := range clients {
			clients[j] = catalogClient{api: a, graphql: side.body}
		}
		res, err := runPhase(ctx, clients, cfg.warmup, cfg.duration, nil)
		if err != nil {
			return err
		}
		rep.addPhase(stdout, side.name, res)
		rates[i] = float64(res.requests-res.errors) / res.elapsed.Seconds()
	}
	if rates[0] > 0 {
		fmt.Fprintf(stdout, "  GraphQL / REST rate: %.2f (same run, same data, same clients)\n", rates[1]/rates[0])
	}
	return nil
}
