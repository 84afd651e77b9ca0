package graphql

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql/model"
)

type courseResolver struct{ s *Server }

// detail is the course's details: as read by id, or through the request's loader for a course
// the catalog listed.
func (c courseResolver) detail(ctx context.Context, obj *model.Course) (*documents.CourseDetail, error) {
	if obj.Detail != nil {
		return obj.Detail, nil
	}
	if err := c.s.wait(ctx, documents.CoursesProjection); err != nil {
		return nil, err
	}
	d, err := load(ctx, requestOf(ctx).loaders.details, obj.ID, "course")
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func (c courseResolver) Status(_ context.Context, obj *model.Course) (string, error) {
	return obj.Access.Status, nil
}

func (c courseResolver) Description(ctx context.Context, obj *model.Course) (string, error) {
	d, err := c.detail(ctx, obj)
	if err != nil {
		return "", err
	}
	return d.Description, nil
}

func (c courseResolver) Modules(ctx context.Context, obj *model.Course) ([]model.Module, error) {
	d, err := c.detail(ctx, obj)
	if err != nil {
		return nil, err
	}
	return model.ModulesOf(obj.ID, d.Modules), nil
}

func (c courseResolver) CompletionCount(ctx context.Context, obj *model.Course) (int, error) {
	d, err := c.detail(ctx, obj)
	if err != nil {
		return 0, err
	}
	return d.CompletionCount, nil
}

func (c courseResolver) UpdatedAt(ctx context.Context, obj *model.Course) (*time.Time, error) {
	d, err := c.detail(ctx, obj)
	if err != nil {
		return nil, err
	}
	return &d.UpdatedAt, nil
}

// Stats are for the course's instructor and admins, as GET /v1/courses/{id}/stats.
func (c courseResolver) Stats(ctx context.Context, obj *model.Course) (*documents.CourseStats, error) {
	a, err := caller(ctx, access.Teachers)
	if err != nil {
		return nil, err
	}
	if err := obj.Access.MayTeach(a); err != nil {
		return nil, err
	}
	if err := c.s.wait(ctx, documents.CoursesProjection); err != nil {
		return nil, err
	}
	st, err := load(ctx, requestOf(ctx).loaders.stats, obj.ID, "course")
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Roster is for the course's instructor and admins, as GET /v1/courses/{id}/roster.
func (c courseResolver) Roster(ctx context.Context, obj *model.Course, n *int, after *string) (*model.RosterConnection, error) {
	a, err := caller(ctx, access.Teachers)
	if err != nil {
		return nil, err
	}
	if err := obj.Access.MayTeach(a); err != nil {
		return nil, err
	}
	if err := c.s.wait(ctx, documents.CoursesProjection, documents.LearnersProjection); err != nil {
		return nil, err
	}
	limit, err := first(n)
	if err != nil {
		return nil, err
	}
	l, err := c.s.api.Roster(ctx, obj.ID, limit, deref(after))
	if err != nil {
		return nil, err
	}
	r := &model.RosterConnection{Edges: make([]model.RosterEdge, len(l.Items)), Nodes: make([]documents.RosterItem, len(l.Items)), PageInfo: pageInfo(l.Next)}
	for i, e := range l.Items {
		r.Nodes[i] = e.RosterItem
		r.Edges[i] = model.RosterEdge{Cursor: l.Cursors[i], Node: &r.Nodes[i]}
	}
	return r, nil
}

type enrollmentResolver struct{ s *Server }

// Course is the enrolled course as the learner may see it now.
func (e enrollmentResolver) Course(ctx context.Context, obj *documents.Enrollment) (*model.Course, error) {
	a, err := access.CallerOf(ctx)
	if err != nil {
		return nil, err
	}
	return e.s.course(ctx, a, obj.CourseID)
}

// decodeLoad reads one document through the REST layer's Load (cache first) and decodes it.
func decodeLoad[T any](ctx context.Context, s *Server, projection, coll, id, what string) (T, error) {
	var doc T
	e, err := s.api.Load(ctx, projection, coll, id, what)
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(e.Body, &doc); err != nil {
		return doc, fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return doc, nil
}
