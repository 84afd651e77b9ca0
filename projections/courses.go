package projections

import (
	"context"
	"slices"
	"strings"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// Courses builds the catalog, the course details and the course stats. It keeps the names of
// people in a collection of its own, to show each course's instructor by name.
type Courses struct{}

const coursesPeople = "courses_people"

type person struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Name implements Projector.
func (Courses) Name() string { return documents.CoursesProjection }

// Version implements Projector. 2: stats list module completions in the course's order. 3:
// course details list each module's files. 4: the catalog and the details carry the course's
// image.
func (Courses) Version() int { return 4 }

// ReadModels implements Projector.
func (Courses) ReadModels() []string {
	return []string{documents.Catalog, documents.CourseDetails, documents.Stats, coursesPeople}
}

// Collections implements Projector.
func (Courses) Collections() []string {
	return []string{documents.CourseDetails, documents.Stats}
}

// Listings implements Projector.
func (Courses) Listings() []string { return []string{documents.Catalog} }

// Indexes implements Projector.
func (Courses) Indexes() []readstore.Index {
	return []readstore.Index{
		{Coll: documents.Catalog, Fields: []string{"status", "publishedN"}},
		{Coll: documents.Catalog, Fields: []string{"status", "enrollmentCount"}},
		{Coll: documents.Catalog, Fields: []string{"status", "titleKey"}},
		{Coll: documents.Catalog, Fields: []string{"status", "category"}},
		{Coll: documents.Catalog, Fields: []string{"instructorId"}},
	}
}

// courseDocs is one course's three documents, read and written together.
type courseDocs struct {
	entry  documents.CatalogEntry
	detail documents.CourseDetail
	stats  documents.CourseStats
}

func loadCourse(ctx context.Context, tx *Tx, id string) (*courseDocs, bool, error) {
	c := &courseDocs{}
	ok, err := tx.Get(ctx, documents.Catalog, id, &c.entry)
	if err != nil {
		return c, false, err
	}
	if _, err := tx.Get(ctx, documents.CourseDetails, id, &c.detail); err != nil {
		return c, false, err
	}
	if _, err := tx.Get(ctx, documents.Stats, id, &c.stats); err != nil {
		return c, false, err
	}
	return c, ok, nil
}

// save derives what the three documents share from the detail, then writes them.
func (c *courseDocs) save(tx *Tx, e Event) error {
	d := &c.detail
	d.ModuleCount = len(d.Modules)
	d.EnrollmentCount = c.stats.Active + c.stats.Completed
	d.CompletionCount = c.stats.Completed
	d.CompletionRate = documents.Rate(c.stats.Completed, c.stats.Enrolled)
	d.UpdatedAt = e.RecordedAt
	c.stats.CompletionRate = d.CompletionRate
	c.entry.CatalogItem = d.CatalogItem
	c.entry.Status = d.Status
	c.entry.InstructorID = d.Instructor.ID
	c.entry.TitleWords = documents.Words(d.Title)
	c.entry.TitleKey = strings.ToLower(d.Title)
	if d.PublishedAt != nil {
		c.entry.PublishedN = d.PublishedAt.UnixNano()
	}
	if err := tx.Put(documents.Catalog, d.ID, c.entry); err != nil {
		return err
	}
	if err := tx.Put(documents.CourseDetails, d.ID, c.detail); err != nil {
		return err
	}
	return tx.Put(documents.Stats, d.ID, c.stats)
}

// Refs implements Prefetcher: learner events, most of the log, touch their course.
func (Courses) Refs(e Event) []DocRef {
	var id string
	switch ev := e.Data.(type) {
	case learner.Enrolled:
		id = ev.CourseID
	case learner.Withdrawn:
		id = ev.CourseID
	case learner.CourseCompleted:
		id = ev.CourseID
	case learner.ModuleCompleted:
		return []DocRef{{documents.Stats, ev.CourseID}}
	default:
		return nil
	}
	return []DocRef{{documents.Catalog, id}, {documents.CourseDetails, id}, {documents.Stats, id}}
}

// Apply implements Projector.
func (p Courses) Apply(ctx context.Context, tx *Tx, e Event) error {
	switch ev := e.Data.(type) {
	case user.Registered:
		return putPerson(ctx, tx, coursesPeople, ev.UserID, person{Name: ev.Name, Role: string(ev.Role)})
	case user.NameChanged:
		if err := putPerson(ctx, tx, coursesPeople, ev.UserID, person{Name: ev.Name}); err != nil {
			return err
		}
		ids, err := tx.IDsWhere(ctx, documents.Catalog, "instructorId", ev.UserID)
		if err != nil {
			return err
		}
		return p.each(ctx, tx, e, ids, func(c *courseDocs) { c.detail.Instructor.Name = ev.Name })
	case course.Created:
		var who person
		if _, err := tx.Get(ctx, coursesPeople, ev.InstructorID, &who); err != nil {
			return err
		}
		c, _, err := loadCourse(ctx, tx, ev.CourseID)
		if err != nil {
			return err
		}
		c.detail = documents.CourseDetail{
			CatalogItem: documents.CatalogItem{ID: ev.CourseID, Title: ev.Title, Category: ev.Category, Level: string(ev.Level),
				Instructor: documents.Instructor{ID: ev.InstructorID, Name: who.Name}},
			Description: ev.Description,
			Status:      string(course.StatusDraft),
			Modules:     []documents.Module{},
		}
		c.stats = documents.CourseStats{CourseID: ev.CourseID, ModuleCompletions: []documents.ModuleCompletions{}}
		return c.save(tx, e)
	case course.DetailsUpdated:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) {
			c.detail.Title, c.detail.Description, c.detail.Category, c.detail.Level = ev.Title, ev.Description, ev.Category, string(ev.Level)
		})
	case course.ModuleAdded:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) {
			c.detail.Modules = append(c.detail.Modules, documents.Module{ID: ev.ModuleID, Title: ev.Title})
			c.stats.ModuleCompletions = append(c.stats.ModuleCompletions, documents.ModuleCompletions{ModuleID: ev.ModuleID})
		})
	case course.Published:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) {
			at := ev.At.UTC()
			c.detail.Status, c.detail.PublishedAt = string(course.StatusPublished), &at
		})
	case course.Archived:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { c.detail.Status = string(course.StatusArchived) })
	case course.ModuleFileAttached:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { attachFile(&c.detail, ev) })
	case course.ImageUploaded:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { c.detail.Image = imageProcessing(c.detail.Image) })
	case course.ImageSet:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { c.detail.Image = imageOf(ev.Variants) })
	case learner.Enrolled:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) {
			if ev.Resumed {
				c.stats.Withdrawn--
			} else {
				c.stats.Enrolled++
			}
			c.stats.Active++
		})
	case learner.Withdrawn:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { c.stats.Active--; c.stats.Withdrawn++ })
	case learner.CourseCompleted:
		return p.each(ctx, tx, e, []string{ev.CourseID}, func(c *courseDocs) { c.stats.Active--; c.stats.Completed++ })
	case learner.ModuleCompleted:
		// Only the stats change; the catalog and the details stay as they are.
		var s documents.CourseStats
		ok, err := tx.Get(ctx, documents.Stats, ev.CourseID, &s)
		if err != nil || !ok {
			return err
		}
		for i := range s.ModuleCompletions {
			if s.ModuleCompletions[i].ModuleID == ev.ModuleID {
				s.ModuleCompletions[i].Completions++
			}
		}
		return tx.Put(documents.Stats, ev.CourseID, s)
	}
	return nil
}

// each changes the courses with these ids and saves them; ids of unknown courses are skipped.
func (Courses) each(ctx context.Context, tx *Tx, e Event, ids []string, change func(*courseDocs)) error {
	for _, id := range ids {
		c, ok, err := loadCourse(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		change(c)
		if err := c.save(tx, e); err != nil {
			return err
		}
	}
	return nil
}

func putPerson(ctx context.Context, tx *Tx, coll, id string, p person) error {
	var old person
	if _, err := tx.Get(ctx, coll, id, &old); err != nil {
		return err
	}
	if p.Role == "" {
		p.Role = old.Role
	}
	return tx.Put(coll, id, p)
}

// attachFile lists an attached file on its module; a file listed already stays as it is.
func attachFile(d *documents.CourseDetail, ev course.ModuleFileAttached) {
	for i := range d.Modules {
		m := &d.Modules[i]
		if m.ID != ev.ModuleID {
			continue
		}
		for _, f := range m.Files {
			if f.ID == ev.FileID {
				return
			}
		}
		m.Files = append(m.Files, documents.ModuleFile{ID: ev.FileID, Name: ev.Name, Type: ev.Type, Size: ev.Size, SHA256: ev.SHA256})
	}
}

// imageProcessing is a course's image once a new one is uploaded: processing, still showing the
// variants of the image before it, if any.
func imageProcessing(before *documents.CourseImage) *documents.CourseImage {
	img := &documents.CourseImage{Status: documents.ImageProcessing, Formats: map[string][]documents.ImageSource{}}
	if before != nil {
		img.Width, img.Height, img.Formats = before.Width, before.Height, before.Formats
	}
	return img
}

// imageOf is the image of these variants, narrowest first in each format.
func imageOf(vs []course.ImageVariant) *documents.CourseImage {
	img := &documents.CourseImage{Status: documents.ImageReady, Formats: map[string][]documents.ImageSource{}}
	for _, v := range vs {
		img.Formats[v.Format] = append(img.Formats[v.Format], documents.ImageSource{URL: documents.MediaURL(v.Key), Width: v.Width, Height: v.Height})
		if v.Width > img.Width {
			img.Width, img.Height = v.Width, v.Height
		}
	}
	for _, srcs := range img.Formats {
		slices.SortFunc(srcs, func(a, b documents.ImageSource) int { return a.Width - b.Width })
	}
	return img
}
