package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"time"

	gqlgen "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

// The limits every operation meets before any field runs. A screen's query is far inside each;
// they bound what one request can make the server do.
const (
	MaxDepth      = 10       // nested selections, fragments followed
	MaxComplexity = 5000     // gqlgen's complexity: one a field, a connection's items times first
	MaxQueryBytes = 16 << 10 // of the query text
	MaxAliases    = 30       // fields asked under another name
	MaxBodyBytes  = 64 << 10 // of a request body, variables included
	// PersistedQueries is how many queries the automatic persisted queries remember (an LRU).
	PersistedQueries = 1000
)

// configure sets the errors, limits and metrics of an endpoint.
func (s *Server) configure(h *handler.Server) {
	h.SetErrorPresenter(s.present)
	h.SetRecoverFunc(s.recover)
	h.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	h.Use(extension.Introspection{})
	h.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](PersistedQueries)})
	h.Use(limits{s: s, measured: lru.New[*gqlerror.Error](1000)})
	h.Use(extension.FixedComplexityLimit(MaxComplexity))
	h.AroundResponses(s.measure)
	h.Use(s.shared)
}

// complexity counts a connection's items as first of its selection.
func complexity(c *exec.ComplexityRoot) {
	times := func(child int, n *int) int {
		if n == nil {
			return child * 20
		}
		return child * max(*n, 1)
	}
	c.Query.Courses = func(child int, _ *model.CourseFilter, _ *model.CourseSort, n *int, _ *string, _ *uint64) int {
		return times(child, n)
	}
	c.Course.Roster = func(child int, n *int, _ *string) int { return times(child, n) }
}

type limits struct {
	s *Server
	// measured remembers the verdict on the texts measured lately (nil: within the limits):
	// a client sends the same few queries again and again.
	measured *lru.LRU[*gqlerror.Error]
}

func (limits) ExtensionName() string                  { return "EduTrackLimits" }
func (limits) Validate(gqlgen.ExecutableSchema) error { return nil }

func limitError(format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": CodeLimit}}
}

// MutateOperationParameters refuses a query text past its size, depth or aliases before it
// is validated, let alone run: a query past them costs no more than its parsing. A text that
// does not parse is left to gqlgen, which says why.
func (l limits) MutateOperationParameters(_ context.Context, p *gqlgen.RawParams) *gqlerror.Error {
	if len(p.Query) > MaxQueryBytes {
		return limitError("the query is %d bytes, past the limit of %d", len(p.Query), MaxQueryBytes)
	}
	if p.Query == "" {
		return nil // a persisted query's hash: measured when it was persisted
	}
	if verdict, ok := l.measured.Get(context.Background(), p.Query); ok {
		return verdict
	}
	verdict := measure(p.Query)
	l.measured.Add(context.Background(), p.Query, verdict)
	return verdict
}

// measure answers the limit a query text goes past, if any.
func measure(query string) *gqlerror.Error {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil
	}
	for _, op := range doc.Operations {
		depth, aliases := measureSelections(doc, op.SelectionSet, 0, map[string]bool{})
		if depth > MaxDepth {
			return limitError("the operation is %d fields deep, past the limit of %d", depth, MaxDepth)
		}
		if aliases > MaxAliases {
			return limitError("the operation has %d aliases, past the limit of %d", aliases, MaxAliases)
		}
	}
	return nil
}

// MutateOperationContext lets only admins (or anyone, when configured) introspect: the others
// get FORBIDDEN for an operation that asks for the schema.
func (l limits) MutateOperationContext(ctx context.Context, op *gqlgen.OperationContext) *gqlerror.Error {
	if a, ok := auth.FromContext(ctx); l.s.opts.Introspection || ok && a.Role == domain.Admin {
		return nil
	}
	op.DisableIntrospection = true
	if op.Operation != nil {
		for _, sel := range op.Operation.SelectionSet {
			if f, ok := sel.(*ast.Field); ok && (f.Name == "__schema" || f.Name == "__type") {
				return &gqlerror.Error{Message: "introspection is for admins here; the schema is at /graphql/schema.graphql",
					Extensions: map[string]any{"code": CodeForbidden}}
			}
		}
	}
	return nil
}

// measureSelections answers how deep set goes below depth, and how many aliases it has,
// following doc's fragments (each once on a path: a cycle, which validation refuses, ends).
func measureSelections(doc *ast.QueryDocument, set ast.SelectionSet, depth int, inFragment map[string]bool) (deepest, aliases int) {
	deepest = depth
	for _, sel := range set {
		var d, a int
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				aliases++
			}
			d, a = measureSelections(doc, s.SelectionSet, depth+1, inFragment)
		case *ast.InlineFragment:
			d, a = measureSelections(doc, s.SelectionSet, depth, inFragment)
		case *ast.FragmentSpread:
			def := doc.Fragments.ForName(s.Name)
			if def == nil || inFragment[s.Name] {
				continue
			}
			inFragment[s.Name] = true
			d, a = measureSelections(doc, def.SelectionSet, depth, inFragment)
			delete(inFragment, s.Name)
		}
		deepest, aliases = max(deepest, d), aliases+a
	}
	return deepest, aliases
}

// refuseBatches answers a request that holds an array of operations (a batch) with one clear
// error, and bounds a body's size: each operation is its own request, with its own limits.
func refuseBatches(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || multipart(r) {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			writeErrors(w, http.StatusRequestEntityTooLarge, limitError("the request body is past the limit of %d bytes", MaxBodyBytes))
			return
		}
		if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '[' {
			writeErrors(w, http.StatusBadRequest, &gqlerror.Error{Message: "a batch of operations is refused: send each operation in a request of its own",
				Extensions: map[string]any{"code": CodeBatch}})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// multipart tells a multipart request (an upload), which guardUploads bounds.
func multipart(r *http.Request) bool {
	t, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return r.Method == http.MethodPost && t == "multipart/form-data"
}

// maxMultipart is the most a multipart request may hold: one image at the upload cap, and the
// operation beside it.
func (s *Server) maxMultipart() int64 { return s.opts.MaxUploadBytes + MaxBodyBytes }

// guardUploads refuses a multipart request before its body is read when it could never be
// answered: uploads are off here, the caller's role may upload no image (the REST route's
// 403), or it says it is larger than the cap. Whether the caller may change the course is
// asked before the file is read and stored, as on the route, by the command side.
func (s *Server) guardUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !multipart(r) {
			next.ServeHTTP(w, r)
			return
		}
		if s.opts.MaxUploadBytes <= 0 {
			writeErrors(w, http.StatusUnsupportedMediaType, &gqlerror.Error{Message: "this process takes no uploads: send JSON, or send the upload to a process with the write role",
				Extensions: map[string]any{"code": CodeUnsupported}})
			return
		}
		if a, ok := auth.FromContext(r.Context()); !ok || (a.Role != domain.Instructor && a.Role != domain.Admin) {
			writeErrors(w, http.StatusForbidden, &gqlerror.Error{Message: "only instructors and admins upload files",
				Extensions: map[string]any{"code": CodeForbidden}})
			return
		}
		if r.ContentLength > s.maxMultipart() {
			writeErrors(w, http.StatusRequestEntityTooLarge, &gqlerror.Error{Message: fmt.Sprintf("the request body is past the limit of %d bytes", s.maxMultipart()),
				Extensions: map[string]any{"code": CodeTooLarge, "field": "image"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeErrors(w http.ResponseWriter, status int, errs ...*gqlerror.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

// metrics are the endpoint's, by operation name.
type metrics struct {
	operations *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "graphql", Name: "operations_total",
			Help: "GraphQL operations answered, by operation name (\"anonymous\" when unnamed, \"other\" when not a plain name) and outcome " +
				"(ok, or the first error's extensions.code)."}, []string{"operation", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "graphql", Name: "operation_duration_seconds",
			Help: "Time to answer a GraphQL operation, by operation name.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"operation"}),
	}
	for _, c := range []prometheus.Collector{m.operations, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// plainName is an operation name that may be a label: clients choose names, so anything
// longer or stranger counts as "other".
var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (s *Server) measure(ctx context.Context, next gqlgen.ResponseHandler) *gqlgen.Response {
	start := time.Now()
	resp := next(ctx)
	name := "anonymous"
	if gqlgen.HasOperationContext(ctx) {
		name = operationLabel(gqlgen.GetOperationContext(ctx))
	}
	outcome := "ok"
	if resp != nil && len(resp.Errors) > 0 {
		outcome, _ = resp.Errors[0].Extensions["code"].(string)
		if outcome == "" {
			outcome = CodeBadInput
		}
	}
	s.metrics.operations.WithLabelValues(name, outcome).Inc()
	s.metrics.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	return resp
}

// operationLabel is the operation's name as the metrics label it.
func operationLabel(oc *gqlgen.OperationContext) string {
	n := oc.OperationName
	if n == "" && oc.Operation != nil {
		n = oc.Operation.Name
	}
	switch {
	case n == "":
		return "anonymous"
	case !plainName.MatchString(n):
		return "other"
	}
	return n
}
