package access

import (
	"net/http"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
)

func TestCourses(t *testing.T) {
	draft := []byte(`{"id":"c1","status":"draft","instructor":{"id":"u-ins"},"title":"T"}`)
	published := []byte(`{"id":"c1","status":"published","instructor":{"id":"u-ins"},"title":"T"}`)
	learner := domain.Actor{UserID: "u-ada", Role: domain.Learner}
	notFound := func(err error) bool { return err != nil && problem.From(err).Status == http.StatusNotFound }

	t.Run("keeps_the_facts_of_a_version_and_decodes_a_new_one", func(t *testing.T) {
		cs, err := NewCourses(8)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cs.Facts("course_details:c1", 7, draft)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MayView(learner); !notFound(err) {
			t.Fatalf("a learner viewing a draft: %v; want 404", err)
		}
		// Same version: the facts kept answer, whatever the bytes (a version has one body).
		if c, _ := cs.Facts("course_details:c1", 7, published); c.Status != "draft" {
			t.Fatalf("status %q at the same version; want the kept draft", c.Status)
		}
		c, err = cs.Facts("course_details:c1", 9, published)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MayView(learner); err != nil {
			t.Fatalf("a learner viewing the course once published: %v", err)
		}
	})

	t.Run("keeps_generations_apart_by_key", func(t *testing.T) {
		cs, _ := NewCourses(8)
		cs.Facts("g1:course_details:c1", 7, draft)
		if c, _ := cs.Facts("g2:course_details:c1", 7, published); c.Status != "published" {
			t.Fatalf("status %q under another key; want published", c.Status)
		}
	})

	t.Run("refuses_a_document_it_cannot_decode", func(t *testing.T) {
		cs, _ := NewCourses(8)
		if _, err := cs.Facts("course_details:c1", 7, []byte("{")); err == nil {
			t.Fatal("decoded a broken document")
		}
	})

	t.Run("lets_only_the_instructor_teach", func(t *testing.T) {
		cs, _ := NewCourses(8)
		c, _ := cs.Facts("course_details:c1", 7, published)
		if err := c.MayTeach(domain.Actor{UserID: "u-ins", Role: domain.Instructor}); err != nil {
			t.Fatalf("the instructor: %v", err)
		}
		if err := c.MayTeach(domain.Actor{UserID: "u-other", Role: domain.Instructor}); !notFound(err) {
			t.Fatalf("another instructor: %v; want 404", err)
		}
	})
}
