package graphql

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	gqlgen "github.com/99designs/gqlgen/graphql"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/exec"
	"github.com/edutrack/edutrack/readapi/graphql/model"
	"github.com/edutrack/edutrack/readapi/history"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// resolver is the schema's root: each type's resolvers are the server's methods, grouped.
type resolver struct{ s *Server }

func (r *resolver) Query() exec.QueryResolver           { return queryResolver{r.s} }
func (r *resolver) Course() exec.CourseResolver         { return courseResolver{r.s} }
func (r *resolver) Enrollment() exec.EnrollmentResolver { return enrollmentResolver{r.s} }
func (r *resolver) Viewer() exec.ViewerResolver         { return viewerResolver{r.s} }

type queryResolver struct{ s *Server }

// caller is who sent the request, if their role is one of roles: FORBIDDEN otherwise, as the
// route of the same read answers 403.
func caller(ctx context.Context, roles []domain.Role) (domain.Actor, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return domain.Actor{}, err
	}
	return a, access.Admits(a, roles)
}

// wait waits for projections to reach the minPosition of the query field that the resolver of
// ctx is part of: a nested field reads its own read models as of the same position.
func (s *Server) wait(ctx context.Context, projections ...string) error {
	fc := gqlgen.GetFieldContext(ctx)
	for fc != nil && fc.Parent != nil && fc.Parent.Field.Field != nil {
		fc = fc.Parent
	}
	if fc == nil {
		return nil
	}
	if pos, ok := fc.Args["minPosition"].(*uint64); ok && pos != nil {
		return s.api.WaitFor(ctx, *pos, projections...)
	}
	return nil
}

// first reads a connection's page size, as the routes read limit.
func first(n *int) (int, error) {
	if n == nil {
		return 20, nil
	}
	if *n < 1 || *n > readhttp.MaxLimit {
		return 0, problem.New(http.StatusBadRequest, "first", fmt.Sprintf("must be an integer from 1 to %d", readhttp.MaxLimit))
	}
	return *n, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func pageInfo(next *string) *model.PageInfo {
	return &model.PageInfo{HasNextPage: next != nil, EndCursor: next}
}

func (q queryResolver) Courses(ctx context.Context, filter *model.CourseFilter, sort *model.CourseSort, n *int, after *string, minPosition *uint64) (*model.CourseConnection, error) {
	if _, err := caller(ctx, access.Readers); err != nil {
		return nil, err
	}
	if err := q.s.wait(ctx, documents.CoursesProjection); err != nil {
		return nil, err
	}
	limit, err := first(n)
	if err != nil {
		return nil, err
	}
	p := readapi.CatalogParams{Limit: limit, Cursor: deref(after)}
	if sort != nil {
		p.Sort = strings.ToLower(string(*sort))
	}
	if filter != nil {
		p.Category, p.Level, p.InstructorID, p.Q = deref(filter.Category), deref(filter.Level), deref(filter.InstructorID), deref(filter.Q)
	}
	var at uint64 // the catalog's kept pages serve a page read at this position or later
	if minPosition != nil {
		at = *minPosition
	}
	l, err := q.s.api.CatalogAt(ctx, p, at)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(l.Items))
	for i, e := range l.Items {
		ids[i] = e.ID
	}
	requestOf(ctx).loaders.listed(ids)
	c := &model.CourseConnection{Edges: make([]model.CourseEdge, len(l.Items)), Nodes: make([]model.Course, len(l.Items)), PageInfo: pageInfo(l.Next)}
	for i, e := range l.Items {
		c.Nodes[i] = *model.CourseFromCatalog(e)
		c.Edges[i] = model.CourseEdge{Cursor: l.Cursors[i], Node: &c.Nodes[i]}
	}
	return c, nil
}

func (q queryResolver) Course(ctx context.Context, id string, _ *uint64) (*model.Course, error) {
	a, err := caller(ctx, access.Readers)
	if err != nil {
		return nil, err
	}
	return q.s.course(ctx, a, id)
}

// course reads course id as a reader sees it: NOT_FOUND for a draft of someone else's.
func (s *Server) course(ctx context.Context, a domain.Actor, id string) (*model.Course, error) {
	if err := s.wait(ctx, documents.CoursesProjection); err != nil {
		return nil, err
	}
	d, err := load(ctx, requestOf(ctx).loaders.details, id, "course")
	if err != nil {
		return nil, err
	}
	c := model.CourseFromDetail(d)
	if err := c.Access.MayView(a); err != nil {
		return nil, err
	}
	return c, nil
}

func (q queryResolver) Me(ctx context.Context, _ *uint64) (*model.Viewer, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return nil, err
	}
	return &model.Viewer{ID: a.UserID, Role: model.Role(strings.ToUpper(string(a.Role)))}, nil
}

func (q queryResolver) Learner(ctx context.Context, id string, reason *string, _ *uint64) (*model.Learner, error) {
	a, err := caller(ctx, access.LearnerRecords)
	if err != nil {
		return nil, err
	}
	read, err := access.ReadLearnerAs(a, id, learner.RecordDashboard, disclosureRequest(ctx, reason), q.s.opts.Disclosures)
	if err != nil {
		return nil, err
	}
	return q.s.learner(ctx, id, read)
}

// learner reads learner id's dashboard, and records the read if it is a disclosure, once the
// dashboard is loaded and before it is answered.
func (s *Server) learner(ctx context.Context, id string, read access.LearnerRead) (*model.Learner, error) {
	if err := s.wait(ctx, documents.LearnersProjection); err != nil {
		return nil, err
	}
	d, err := decodeLoad[documents.Dashboard](ctx, s, documents.LearnersProjection, documents.Dashboards, id, "learner")
	if err != nil {
		return nil, err
	}
	if err := read.Disclose(ctx); err != nil {
		return nil, err
	}
	return &model.Learner{ID: id, Dashboard: d}, nil
}

func (q queryResolver) History(ctx context.Context, learnerID string, asOf time.Time, reason *string, _ *uint64) (*history.StateAsOf, error) {
	a, err := caller(ctx, access.LearnerRecords)
	if err != nil {
		return nil, err
	}
	read, err := access.ReadLearnerAs(a, learnerID, learner.RecordStateAsOf, disclosureRequest(ctx, reason), q.s.opts.Disclosures)
	if err != nil {
		return nil, err
	}
	if q.s.opts.History == nil {
		return nil, problem.New(http.StatusServiceUnavailable, "", "this process does not hold the event log; ask one that does")
	}
	if err := q.s.wait(ctx, documents.LearnersProjection); err != nil {
		return nil, err
	}
	state, err := q.s.opts.History.StateAsOf(ctx, learnerID, asOf)
	if err != nil {
		return nil, err
	}
	if err := read.Disclose(ctx); err != nil {
		return nil, err
	}
	return &state, nil
}

type viewerResolver struct{ s *Server }

// Learner is the caller's own dashboard, which is no disclosure; the other roles have none.
func (v viewerResolver) Learner(ctx context.Context, obj *model.Viewer) (*model.Learner, error) {
	a, err := access.CallerOf(ctx)
	if err != nil || a.Role != domain.Learner {
		return nil, err
	}
	read, err := access.ReadLearnerAs(a, a.UserID, learner.RecordDashboard, access.Request{}, nil)
	if err != nil {
		return nil, err
	}
	return v.s.learner(ctx, a.UserID, read)
}
