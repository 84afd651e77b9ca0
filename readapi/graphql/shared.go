package graphql

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	gqlgen "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/access"
)

// sharedFields tells, for every field of the schema, whether its answer is the same for every
// reader who may ask for it (true), or depends on who asks or reads something other than the
// catalog (false). An operation made only of shared fields has one answer for all the readers
// of a role, which sharedAnswers keeps for a while instead of executing it again: gqlgen
// resolves and marshals each field on its own, about ten times REST's cost for a catalog page
// written from stored bytes. A test fails for a field of the schema missing here, so each new
// field is decided once, here.
var sharedFields = map[string]bool{
	"Query.courses": true, "Query.course": false, "Query.me": false, "Query.learner": false, "Query.history": false,
	"Mutation.*": false, "Subscription.*": false,

	"CourseConnection.edges": true, "CourseConnection.nodes": true, "CourseConnection.pageInfo": true,
	"CourseEdge.cursor": true, "CourseEdge.node": true,
	"PageInfo.hasNextPage": true, "PageInfo.endCursor": true,

	// The catalog lists published courses only: what a published course says of itself is public.
	"Course.id": true, "Course.title": true, "Course.category": true, "Course.level": true, "Course.instructor": true,
	"Course.moduleCount": true, "Course.enrollmentCount": true, "Course.completionRate": true, "Course.publishedAt": true,
	"Course.status": true, "Course.description": true, "Course.modules": true, "Course.completionCount": true,
	"Course.updatedAt": true,
	"Course.stats":     false, "Course.roster": false, // its instructor's and admins'
	"Instructor.id": true, "Instructor.name": true,
	"Module.id": true, "Module.title": true,
	"Course.image": true, "CourseImage.*": true, "ImageFormats.*": true, "ImageSource.*": true, // the same URLs for all
	"Module.files": false, // each file's download link is signed for the caller, if they may have it

	"CourseStats.*": false, "ModuleCompletions.*": false, "RosterConnection.*": false, "RosterEdge.*": false,
	"RosterItem.*": false, "Viewer.*": false, "Learner.*": false, "Dashboard.*": false, "Enrollment.*": false,
	"ModuleFile.*": false, "FileUploadResult.*": false, "CertificateRef.*": false, "LearnerStateAsOf.*": false, "EnrollmentAsOf.*": false, "CommandResult.*": false,
}

// isShared tells whether field of type typ is in sharedFields as shared.
func isShared(typ, field string) bool {
	if field == "__typename" {
		return true
	}
	if shared, ok := sharedFields[typ+"."+field]; ok {
		return shared
	}
	return sharedFields[typ+".*"]
}

// SharedAnswerEntries is how many answers sharedAnswers keeps (an LRU): a catalog page's answer
// is a few kilobytes.
const SharedAnswerEntries = 1000

// sharedAnswers keeps the answers of queries made only of shared fields, by role, text,
// operation name and variables. An answer is served again while the courses projection has not
// moved since it was made, or, once it has, until it is MaxAge old: as long as the REST
// catalog's pages are kept. A query that passes minPosition is always executed (its answer is
// then kept for the next ones), so a client reading its own write sees it.
type sharedAnswers struct {
	maxAge   time.Duration
	position func() uint64
	entries  *lru.LRU[*sharedAnswer]
	outcomes *prometheus.CounterVec
	now      func() time.Time
}

type sharedAnswer struct {
	data     json.RawMessage
	position uint64
	at       time.Time
}

func (sharedAnswers) ExtensionName() string                  { return "EduTrackSharedAnswers" }
func (sharedAnswers) Validate(gqlgen.ExecutableSchema) error { return nil }

// InterceptResponse answers a kept answer for a shared query, or executes it and keeps its
// answer when it has no error.
func (s *sharedAnswers) InterceptResponse(ctx context.Context, next gqlgen.ResponseHandler) *gqlgen.Response {
	if !gqlgen.HasOperationContext(ctx) {
		return next(ctx)
	}
	oc := gqlgen.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return next(ctx) // mutations and subscriptions are never shared, nor counted here
	}
	key, ok := s.key(ctx, oc)
	if !ok {
		s.outcomes.WithLabelValues("not_shared").Inc()
		return next(ctx)
	}
	now := s.now()
	pos := s.position()
	if e, hit := s.entries.Get(ctx, key); hit && s.fresh(e, pos, now) {
		s.outcomes.WithLabelValues("hit").Inc()
		sharedBodyOf(ctx).found(e, operationLabel(oc))
		return &gqlgen.Response{Data: e.data}
	}
	s.outcomes.WithLabelValues("miss").Inc()
	resp := next(ctx)
	if resp != nil && len(resp.Errors) == 0 && len(resp.Extensions) == 0 && resp.Data != nil {
		// pos was read before the execution, which saw the read models at least as new.
		e := &sharedAnswer{data: resp.Data, position: pos, at: now}
		s.entries.Add(ctx, key, e)
		sharedBodyOf(ctx).found(e, operationLabel(oc))
	}
	return resp
}

// fresh tells whether e may be served while the catalog is at pos: if it has not moved since e
// was made, or e is younger than the max age. An answer past pos was read from read models
// that a rebuild has since replaced.
func (s *sharedAnswers) fresh(e *sharedAnswer, pos uint64, now time.Time) bool {
	return e.position <= pos && (e.position == pos || now.Sub(e.at) < s.maxAge)
}

// key is the shared answer's key for the query oc of the caller of ctx, if it is made only of
// shared fields and does not wait for a position.
func (s *sharedAnswers) key(ctx context.Context, oc *gqlgen.OperationContext) (string, bool) {
	if !sharedSelection(oc, oc.Operation.SelectionSet) {
		return "", false
	}
	a, err := access.CallerOf(ctx)
	if err != nil {
		return "", false
	}
	vars, err := json.Marshal(oc.Variables) // map keys sorted: the same variables, the same text
	if err != nil {
		return "", false
	}
	var b strings.Builder
	for _, part := range []string{string(a.Role), oc.OperationName, oc.RawQuery} {
		b.WriteString(part)
		b.WriteByte(0)
	}
	b.Write(vars)
	return b.String(), true
}

// sharedSelection tells whether every field that set selects, through fragments too, is shared
// and none passes minPosition.
func sharedSelection(oc *gqlgen.OperationContext, set ast.SelectionSet) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.ObjectDefinition == nil || !isShared(sel.ObjectDefinition.Name, sel.Name) {
				return false
			}
			if pos := sel.ArgumentMap(oc.Variables)["minPosition"]; pos != nil {
				return false
			}
			if !sharedSelection(oc, sel.SelectionSet) {
				return false
			}
		case *ast.InlineFragment:
			if !sharedSelection(oc, sel.SelectionSet) {
				return false
			}
		case *ast.FragmentSpread:
			f := oc.Doc.Fragments.ForName(sel.Name)
			if f == nil || !sharedSelection(oc, f.SelectionSet) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func newSharedAnswers(s *Server, reg prometheus.Registerer) (*sharedAnswers, error) {
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "graphql", Name: "shared_answers_total",
		Help: "GraphQL queries by whether a kept answer served them: hit, hit_bytes (the same request's bytes, answered with the bytes kept), miss (executed and kept), not_shared (a query with a " +
			"field that depends on who asks, a minPosition, or not a query)."}, []string{"outcome"})
	if err := reg.Register(outcomes); err != nil {
		return nil, err
	}
	return &sharedAnswers{
		maxAge:   s.opts.SharedMaxAge,
		position: func() uint64 { return s.api.Position(documents.CoursesProjection) },
		entries:  lru.New[*sharedAnswer](SharedAnswerEntries),
		outcomes: outcomes,
		now:      time.Now,
	}, nil
}
