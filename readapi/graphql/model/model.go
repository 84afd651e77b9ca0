// Package model holds the Go types the GraphQL schema binds to, beside the read models'
// documents it binds to directly; gqlgen writes models_gen.go from the schema.
package model

import (
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/access"
)

// Course is a course as a query found it: its catalog item, the facts access decisions need,
// and its details when the query read them (course(id)); the other fields load them.
type Course struct {
	documents.CatalogItem
	Access access.Course
	// Detail is nil until read.
	Detail *documents.CourseDetail
}

// CourseFromCatalog is a course the catalog listed: published, by the instructor it names.
func CourseFromCatalog(e documents.CatalogEntry) *Course {
	c := &Course{CatalogItem: e.CatalogItem, Access: access.Course{Status: e.Status}}
	c.Access.Instructor.ID = e.Instructor.ID
	return c
}

// CourseFromDetail is a course read by id.
func CourseFromDetail(d documents.CourseDetail) *Course {
	c := &Course{CatalogItem: d.CatalogItem, Access: access.Course{Status: d.Status}, Detail: &d}
	c.Access.Instructor.ID = d.Instructor.ID
	return c
}

// Learner is a learner's records: their dashboard.
type Learner struct {
	ID        string
	Dashboard documents.Dashboard
}

// Name is the learner's name, as their dashboard shows it.
func (l Learner) Name() string { return l.Dashboard.Name }

// Enrollments are the learner's courses, as their dashboard lists them.
func (l Learner) Enrollments() []documents.Enrollment { return l.Dashboard.Enrollments }

// Module is a module of the course CourseID.
type Module struct {
	ID, Title string
	Files     []ModuleFile
	CourseID  string
}

// ModuleFile is a file of module ModuleID of course CourseID.
type ModuleFile struct {
	documents.ModuleFile
	CourseID, ModuleID string
}

// Path is the REST route of the file.
func (f ModuleFile) Path() string { return documents.FilePath(f.CourseID, f.ModuleID, f.ID) }

// ModulesOf are the modules of course courseID.
func ModulesOf(courseID string, ms []documents.Module) []Module {
	out := make([]Module, len(ms))
	for i, m := range ms {
		out[i] = Module{ID: m.ID, Title: m.Title, CourseID: courseID, Files: make([]ModuleFile, len(m.Files))}
		for j, f := range m.Files {
			out[i].Files[j] = ModuleFile{ModuleFile: f, CourseID: courseID, ModuleID: m.ID}
		}
	}
	return out
}
