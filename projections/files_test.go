package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
)

// The course details list each module's attached files, once each, and nothing of a file whose
// upload was only started.
func TestCourseDetailsListModuleFiles(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 9, 2, 9, 0, 0, 0, time.UTC)
	sha := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	attached := course.ModuleFileAttached{CourseID: "go", ModuleID: "m2", FileID: "f1", Name: "slides.pdf", Type: "application/pdf",
		Size: 900, SHA256: sha, BlobKey: "module-files/go/f1", At: at}
	var data []eventstore.EventData
	for _, e := range []domain.Event{
		course.ModuleFileUploadStarted{CourseID: "go", ModuleID: "m2", FileID: "f1", Name: "slides.pdf", Type: "application/pdf", Size: 900, SHA256: sha, At: at},
		course.ModuleFileUploadStarted{CourseID: "go", ModuleID: "m2", FileID: "f2", Name: "never.pdf", Type: "application/pdf", Size: 9, SHA256: sha, At: at},
		attached,
		attached, // the log holds what it is given; the read model lists the file once
	} {
		typ, body, err := codec.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, eventstore.EventData{ID: uuid.New(), Type: typ, Data: body})
	}
	if _, err := w.log.Append(context.Background(), course.StreamPrefix+"go", eventstore.Any, data); err != nil {
		t.Fatal(err)
	}
	store := openStore(t)
	run(t, w.log, store, cache.NewMemory(100))
	d := get[documents.CourseDetail](t, store, documents.CourseDetails, "go")
	want := []documents.Module{
		{ID: "m1", Title: "Module m1"},
		{ID: "m2", Title: "Module m2", Files: []documents.ModuleFile{{ID: "f1", Name: "slides.pdf", Type: "application/pdf", Size: 900, SHA256: sha}}},
		{ID: "m3", Title: "Module m3"},
	}
	if diff := cmp.Diff(want, d.Modules); diff != "" {
		t.Errorf("modules (-want +got):\n%s", diff)
	}
}
