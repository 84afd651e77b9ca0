package live

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// topic is one thing a stream follows, as the client named it.
type topic struct {
	name string // learner:ada, course:go-101, catalog
	kind string
	id   string
}

// maxTopicID bounds an id in a topic: ids are at most 64 characters (the write API's rule),
// and anything much longer is not worth a read of the store.
const maxTopicID = 128

// parseTopics reads the topics parameter: names separated by commas (the parameter may also be
// repeated), each learner:{id}, course:{id} or catalog, at most max of them once repeats are
// left out.
func parseTopics(r *http.Request, max int) ([]topic, error) {
	var out []topic
	for _, v := range r.URL.Query()["topics"] {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" || slices.ContainsFunc(out, func(t topic) bool { return t.name == name }) {
				continue
			}
			kind, id, hasID := strings.Cut(name, ":")
			switch {
			case kind == topicCatalog && !hasID:
			case (kind == topicLearner || kind == topicCourse) && id != "" && len(id) <= maxTopicID && !strings.ContainsAny(id, " \t/:"):
			default:
				return nil, problem.New(http.StatusBadRequest, "topics",
					fmt.Sprintf("%q is not a topic: name learner:{id}, course:{id} or catalog", name))
			}
			out = append(out, topic{name: name, kind: kind, id: id})
		}
	}
	if len(out) == 0 {
		return nil, problem.New(http.StatusBadRequest, "topics", "name at least one topic: learner:{id}, course:{id} or catalog, separated by commas")
	}
	if len(out) > max {
		return nil, problem.New(http.StatusBadRequest, "topics",
			fmt.Sprintf("%d topics; a stream follows at most %d (EDUTRACK_LIVE_MAX_TOPICS): open another stream for the rest", len(out), max))
	}
	return out, nil
}

// projectionsOf are the projections that build the documents of topics, which a stream's
// minPosition waits for.
func projectionsOf(topics []topic) []string {
	var out []string
	for _, t := range topics {
		p := documents.CoursesProjection
		if t.kind == topicLearner {
			p = documents.LearnersProjection
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// authorize decides whether c's caller may follow each of its topics, as the GET routes of the
// documents behind them decide, and with the same answers (403 for a role that may never read
// them, 404 for what is someone else's or does not exist). It fills in what c may read and
// the projections it follows, and returns the reads of learners' records that are disclosures
// once the stream opens.
func (h *Hub) authorize(r *http.Request, c *conn) ([]access.LearnerRead, error) {
	ctx := r.Context()
	var reads []access.LearnerRead
	follow := func(p string) {
		if !slices.Contains(c.projs, p) {
			c.projs = append(c.projs, p)
		}
	}
	for _, t := range c.topics {
		switch t.kind {
		case topicCatalog:
			if err := auth.Require(ctx, access.Readers...); err != nil {
				return nil, err
			}
			follow(documents.CoursesProjection)
		case topicCourse:
			if err := auth.Require(ctx, access.Readers...); err != nil {
				return nil, err
			}
			d, err := h.read(ctx, documents.CourseDetails, t.id, 0)
			if errors.Is(err, readstore.ErrNotFound) {
				return nil, readhttp.NotFound("course")
			}
			if err != nil {
				return nil, err
			}
			if err := access.MayView(c.actor, d.Body); err != nil {
				return nil, err
			}
			follow(documents.CoursesProjection)
			if c.actor.Role == domain.Admin || access.MayTeach(c.actor, d.Body) == nil {
				c.teaches[t.id] = true
				follow(documents.LearnersProjection) // the roster
			}
		case topicLearner:
			read, err := access.ReadLearner(r, t.id, learner.RecordDashboard, h.opts.Disclosures)
			if err != nil {
				return nil, err
			}
			// As the GET: a learner who does not exist is not disclosed, and answers 404.
			if _, err := h.read(ctx, documents.Dashboards, t.id, 0); errors.Is(err, readstore.ErrNotFound) {
				return nil, readhttp.NotFound("learner")
			} else if err != nil {
				return nil, err
			}
			reads = append(reads, read)
			follow(documents.LearnersProjection)
		}
	}
	return reads, nil
}
