package course_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/domaintest"
)

const fileSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

var (
	limits = course.FileLimits{MaxSize: 1000, Types: []string{"application/pdf", "application/zip", "video/mp4"}}
	slides = course.FileUpload{FileID: "f-1", ModuleID: "intro", Name: "Slides week 1.pdf", Type: "application/pdf", Size: 900,
		SHA256: fileSHA}
	uploadStarted = course.ModuleFileUploadStarted{CourseID: id, ModuleID: "intro", FileID: "f-1", Name: "Slides week 1.pdf",
		Type: "application/pdf", Size: 900, SHA256: fileSHA, At: t1}
	storedSlides = course.StoredFile{Key: "module-files/c-1/f-1", Size: 900, SHA256: fileSHA, Types: []string{"application/pdf"}}
	fileAttached = course.ModuleFileAttached{CourseID: id, ModuleID: "intro", FileID: "f-1", Name: "Slides week 1.pdf",
		Type: "application/pdf", Size: 900, SHA256: fileSHA, BlobKey: "module-files/c-1/f-1", At: t2}
)

type fileSnapshot struct {
	Course   snapshot
	Upload   course.FileUpload
	Started  bool
	Attached bool
}

func fileState(c *course.Course) fileSnapshot {
	u, ok := c.FileUpload("f-1")
	return fileSnapshot{Course: state(c), Upload: u, Started: ok, Attached: c.FileAttached("f-1")}
}

func runFiles(t *testing.T, cases []testCase) {
	t.Helper()
	domaintest.Run(t, func() *course.Course { return course.New(id) }, fileState, cases)
}

func TestStartModuleFileUpload(t *testing.T) {
	start := func(u course.FileUpload) func(*course.Course) error {
		return func(c *course.Course) error { return c.StartModuleFileUpload(u, limits, t1) }
	}
	with := func(change func(*course.FileUpload)) course.FileUpload {
		u := slides
		change(&u)
		return u
	}
	invalid := func(name, field string, change func(*course.FileUpload)) testCase {
		return testCase{Name: name, Given: []domain.Event{created, moduleAdded}, When: start(with(change)), Kind: domain.Invalid, Field: field}
	}
	runFiles(t, []testCase{
		{
			Name:  "records the declaration of a draft's file",
			Given: []domain.Event{created, moduleAdded},
			When:  start(slides),
			Then:  []domain.Event{uploadStarted},
		},
		{
			Name:  "records the declaration of a published course's file at the size cap",
			Given: []domain.Event{created, moduleAdded, published},
			When:  start(with(func(u *course.FileUpload) { u.Size = 1000 })),
			Then:  []domain.Event{func() course.ModuleFileUploadStarted { e := uploadStarted; e.Size = 1000; return e }()},
		},
		{
			Name:  "changes nothing when the same file is declared again",
			Given: []domain.Event{created, moduleAdded, uploadStarted},
			When:  start(slides),
		},
		{
			Name:  "rejects another declaration under a file id in use",
			Given: []domain.Event{created, moduleAdded, uploadStarted},
			When:  start(with(func(u *course.FileUpload) { u.Size = 901 })),
			Err:   course.ErrFileExists, Kind: domain.Conflict, Field: "fileId",
		},
		{
			Name:  "rejects a module the course does not have",
			Given: []domain.Event{created, moduleAdded},
			When:  start(with(func(u *course.FileUpload) { u.ModuleID = "other" })),
			Err:   course.ErrModuleNotFound, Kind: domain.NotFound, Field: "moduleId",
		},
		{
			Name: "rejects a course that does not exist",
			When: start(slides),
			Err:  course.ErrNotFound, Kind: domain.NotFound,
		},
		{
			Name:  "rejects an archived course",
			Given: []domain.Event{created, moduleAdded, published, archived},
			When:  start(slides),
			Err:   course.ErrArchived, Kind: domain.Conflict,
		},
		invalid("rejects a file over the size cap", "size", func(u *course.FileUpload) { u.Size = 1001 }),
		invalid("rejects an empty file", "size", func(u *course.FileUpload) { u.Size = 0 }),
		invalid("rejects a type not allowed", "type", func(u *course.FileUpload) { u.Type = "text/html" }),
		invalid("rejects an upper-case digest", "sha256", func(u *course.FileUpload) { u.SHA256 = strings.ToUpper(fileSHA) }),
		invalid("rejects a short digest", "sha256", func(u *course.FileUpload) { u.SHA256 = fileSHA[:63] }),
		invalid("rejects an empty name", "name", func(u *course.FileUpload) { u.Name = "" }),
		invalid("rejects a path", "name", func(u *course.FileUpload) { u.Name = "../etc/passwd" }),
		invalid("rejects a backslash", "name", func(u *course.FileUpload) { u.Name = `a\b.pdf` }),
		invalid("rejects a quote", "name", func(u *course.FileUpload) { u.Name = `a".pdf` }),
		invalid("rejects a line break", "name", func(u *course.FileUpload) { u.Name = "a\r\nb.pdf" }),
		invalid("rejects a right-to-left override", "name", func(u *course.FileUpload) { u.Name = "slides\u202Efdp.exe" }),
		invalid("rejects a dot-dot", "name", func(u *course.FileUpload) { u.Name = ".." }),
		invalid("rejects a leading space", "name", func(u *course.FileUpload) { u.Name = " a.pdf" }),
		invalid("rejects a name over 255 characters", "name", func(u *course.FileUpload) { u.Name = strings.Repeat("é", 256) }),
	})
}

func TestAttachModuleFile(t *testing.T) {
	attach := func(s course.StoredFile) func(*course.Course) error {
		return func(c *course.Course) error { return c.AttachModuleFile("f-1", s, t2) }
	}
	with := func(change func(*course.StoredFile)) course.StoredFile {
		s := storedSlides
		s.Types = append([]string(nil), s.Types...)
		change(&s)
		return s
	}
	started := []domain.Event{created, moduleAdded, uploadStarted}
	mismatch := func(name, field string, s course.StoredFile) testCase {
		return testCase{Name: name, Given: started, When: attach(s), Check: func(t *testing.T, c *course.Course) {
			var me *course.MismatchError
			err := c.AttachModuleFile("f-1", s, t2)
			if !errors.As(err, &me) || me.Field != field {
				t.Errorf("err = %v, want a mismatch of %s", err, field)
			}
		}, Kind: domain.Invalid, Field: field}
	}
	runFiles(t, []testCase{
		{
			Name:  "attaches bytes that match the declaration",
			Given: started,
			When:  attach(storedSlides),
			Then:  []domain.Event{fileAttached},
		},
		{
			Name:  "accepts a declared type the sniffed one is a kind of",
			Given: []domain.Event{created, moduleAdded, func() course.ModuleFileUploadStarted { e := uploadStarted; e.Type = "application/zip"; return e }()},
			When: attach(with(func(s *course.StoredFile) {
				s.Types = []string{"application/vnd.openxmlformats-officedocument.presentationml.presentation", "application/zip"}
				s.ZIP = true
			})),
			Then: []domain.Event{func() course.ModuleFileAttached { e := fileAttached; e.Type = "application/zip"; return e }()},
		},
		{
			Name:  "changes nothing for an attached file",
			Given: append(started, fileAttached),
			When:  attach(with(func(s *course.StoredFile) { s.SHA256 = "" })),
		},
		{
			Name:  "rejects a file that was never declared",
			Given: []domain.Event{created, moduleAdded},
			When:  attach(storedSlides),
			Err:   course.ErrFileNotFound, Kind: domain.NotFound, Field: "fileId",
		},
		{
			Name:  "rejects a file whose bytes were never uploaded",
			Given: started,
			When:  attach(course.StoredFile{}),
			Err:   course.ErrNotUploaded, Kind: domain.Conflict, Field: "fileId",
		},
		{
			Name:  "rejects an archived course",
			Given: append(started, published, archived),
			When:  attach(storedSlides),
			Err:   course.ErrArchived, Kind: domain.Conflict,
		},
		mismatch("rejects a shorter file", "size", with(func(s *course.StoredFile) { s.Size = 899 })),
		mismatch("rejects a longer file", "size", with(func(s *course.StoredFile) { s.Size = 901 })),
		mismatch("rejects another digest", "sha256", with(func(s *course.StoredFile) { s.SHA256 = strings.Repeat("0", 64) })),
		mismatch("rejects another sniffed type", "type", with(func(s *course.StoredFile) { s.Types = []string{"application/zip"}; s.ZIP = true })),
		mismatch("rejects bytes of no known type", "type", with(func(s *course.StoredFile) { s.Types = nil })),
		mismatch("rejects a PDF that is also a ZIP archive", "type", with(func(s *course.StoredFile) { s.ZIP = true })),
	})
}
