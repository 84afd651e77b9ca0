package course

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edutrack/edutrack/domain"
)

// A module's files arrive in two steps. StartModuleFileUpload records what the instructor
// declares (name, type, size, SHA-256) before any byte is sent, and the client then puts the
// bytes straight into the blob store. AttachModuleFile compares what the store holds with the
// declaration and, when they agree, lists the file on the module. A declaration that is never
// completed lists nothing.

const (
	maxFileNameLen = 255
	// MaxFiles is how many files, attached or still uploading, one course may hold: each one
	// stays in the aggregate, which every command on the course loads.
	MaxFiles = 2000
)

var (
	// ErrModuleNotFound is returned (on field "moduleId") for a module the course does not have.
	ErrModuleNotFound = domain.Errorf(domain.NotFound, "module not found")
	// ErrFileNotFound is returned (on field "fileId") for a file no upload of the course started.
	ErrFileNotFound = domain.Errorf(domain.NotFound, "file not found")
	// ErrFileExists is returned (on field "fileId") when the file id names another declaration.
	ErrFileExists = domain.Errorf(domain.Conflict, "a file with this id was declared with other details")
	// ErrTooManyFiles is returned when the course already holds MaxFiles files.
	ErrTooManyFiles = domain.Errorf(domain.Conflict, "course has too many files")
	// ErrNotUploaded is returned by AttachModuleFile when the store holds no bytes for the file.
	ErrNotUploaded = domain.Errorf(domain.Conflict, "the file's bytes have not been uploaded; PUT them to the upload URL first")
)

// FileLimits are what a deployment accepts as module files; they come from its configuration.
type FileLimits struct {
	// MaxSize is the largest file in bytes.
	MaxSize int64
	// Types are the media types a file may be, such as application/pdf.
	Types []string
}

// FileUpload is a file as its uploader declares it.
type FileUpload struct {
	FileID   string
	ModuleID string
	Name     string
	Type     string
	Size     int64
	// SHA256 is the lower-case hex SHA-256 of the bytes.
	SHA256 string
}

// StoredFile is what the blob store holds for a file, read back from its bytes.
type StoredFile struct {
	// Key is where the verified copy is kept; empty when nothing was kept.
	Key string
	// Size is the bytes read, at most one past the declared size.
	Size   int64
	SHA256 string
	// Types are the media types sniffed from the bytes: the most specific first, then the
	// types it is a kind of (a .docx is also application/zip).
	Types []string
	// ZIP tells that the bytes also open as a ZIP archive, whatever their first bytes say.
	ZIP bool
}

// MismatchError is returned by AttachModuleFile when the stored bytes differ from the
// declaration in Field. It is an Invalid error on that field; a transport may tell it apart,
// since the request was well formed and the bytes are what is wrong.
type MismatchError struct {
	Field    string
	Declared string
	Found    string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the uploaded file's %s is %s, but %s was declared", e.Field, e.Found, e.Declared)
}

func (e *MismatchError) Unwrap() error { return domain.Invalidf(e.Field, "%s", e.Error()) }

// moduleFile is a file of the course, still uploading or attached.
type moduleFile struct {
	upload   FileUpload
	attached bool
}

// ModuleFileUploadStarted: an instructor declared a file for a module and may now upload it.
type ModuleFileUploadStarted struct {
	CourseID string    `json:"courseId"`
	ModuleID string    `json:"moduleId"`
	FileID   string    `json:"fileId"`
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	At       time.Time `json:"at"`
}

// ModuleFileAttached: the uploaded bytes matched their declaration, and the file is listed on
// its module. BlobKey is where the verified bytes are kept.
type ModuleFileAttached struct {
	CourseID string    `json:"courseId"`
	ModuleID string    `json:"moduleId"`
	FileID   string    `json:"fileId"`
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	BlobKey  string    `json:"blobKey"`
	At       time.Time `json:"at"`
}

func (ModuleFileUploadStarted) EventType() string { return "course.module_file_upload_started.v1" }
func (ModuleFileAttached) EventType() string      { return "course.module_file_attached.v1" }

func fileEvents() []domain.Event {
	return []domain.Event{ModuleFileUploadStarted{}, ModuleFileAttached{}}
}

// FileUpload returns the declaration of file id, and whether an upload of it was started.
func (c *Course) FileUpload(id string) (FileUpload, bool) {
	f, ok := c.files[id]
	if !ok {
		return FileUpload{}, false
	}
	return f.upload, true
}

// FileAttached reports whether file id is listed on its module.
func (c *Course) FileAttached(id string) bool {
	f, ok := c.files[id]
	return ok && f.attached
}

// StartModuleFileUpload declares a file of a module, within limits. Declaring the same file
// again with the same details changes nothing. It returns ErrNotFound, ErrArchived,
// ErrModuleNotFound, ErrFileExists, ErrTooManyFiles, or an Invalid error on "name", "type",
// "size" or "sha256".
func (c *Course) StartModuleFileUpload(u FileUpload, limits FileLimits, at time.Time) error {
	if err := c.checkChangeable(); err != nil {
		return err
	}
	if !c.HasModule(u.ModuleID) {
		return ErrModuleNotFound.WithField("moduleId")
	}
	if err := u.validate(limits); err != nil {
		return err
	}
	if f, ok := c.files[u.FileID]; ok {
		if f.upload == u {
			return nil
		}
		return ErrFileExists.WithField("fileId")
	}
	if len(c.files) >= MaxFiles {
		return ErrTooManyFiles
	}
	c.record(ModuleFileUploadStarted{CourseID: c.id, ModuleID: u.ModuleID, FileID: u.FileID, Name: u.Name, Type: u.Type,
		Size: u.Size, SHA256: u.SHA256, At: at})
	return nil
}

// AttachModuleFile lists file id on its module once stored holds exactly what was declared:
// its size, its SHA-256, and a type sniffed from the bytes that is the declared one. Bytes that
// also open as a ZIP archive are refused unless a ZIP was declared: a file that is two things
// at once is served as one and opened as the other. Attaching an attached file changes nothing.
// It returns ErrNotFound, ErrArchived, ErrFileNotFound, ErrNotUploaded or a *MismatchError.
func (c *Course) AttachModuleFile(id string, stored StoredFile, at time.Time) error {
	if err := c.checkChangeable(); err != nil {
		return err
	}
	f, ok := c.files[id]
	if !ok {
		return ErrFileNotFound.WithField("fileId")
	}
	if f.attached {
		return nil
	}
	if err := f.upload.matches(stored); err != nil {
		return err
	}
	u := f.upload
	c.record(ModuleFileAttached{CourseID: c.id, ModuleID: u.ModuleID, FileID: u.FileID, Name: u.Name, Type: u.Type, Size: u.Size,
		SHA256: u.SHA256, BlobKey: stored.Key, At: at})
	return nil
}

// matches compares the declaration with what the store holds.
func (u FileUpload) matches(s StoredFile) error {
	switch {
	case s.Key == "" && s.Size == 0:
		return ErrNotUploaded.WithField("fileId")
	case s.Size != u.Size:
		found := fmt.Sprintf("%d bytes", s.Size)
		if s.Size > u.Size {
			found = fmt.Sprintf("more than %d bytes", u.Size)
		}
		return &MismatchError{Field: "size", Declared: fmt.Sprintf("%d bytes", u.Size), Found: found}
	case s.SHA256 != u.SHA256:
		return &MismatchError{Field: "sha256", Declared: u.SHA256, Found: s.SHA256}
	case !slices.Contains(s.Types, u.Type):
		found := "unknown"
		if len(s.Types) > 0 {
			found = s.Types[0]
		}
		return &MismatchError{Field: "type", Declared: u.Type, Found: found}
	case s.ZIP && !slices.Contains(s.Types, "application/zip"):
		return &MismatchError{Field: "type", Declared: u.Type, Found: u.Type + " that is also a ZIP archive"}
	}
	return nil
}

func (u FileUpload) validate(limits FileLimits) error {
	if err := validateFileName(u.Name); err != nil {
		return err
	}
	if !slices.Contains(limits.Types, u.Type) {
		return domain.Invalidf("type", "must be one of %s", strings.Join(limits.Types, ", "))
	}
	if u.Size < 1 || u.Size > limits.MaxSize {
		return domain.Invalidf("size", "must be 1 to %d bytes", limits.MaxSize)
	}
	if !validSHA256(u.SHA256) {
		return domain.Invalidf("sha256", "must be the SHA-256 of the file as 64 lower-case hex digits")
	}
	return nil
}

// validateFileName accepts a name that is safe to show and to offer as a download's file name:
// no path, no control or format characters (such as a right-to-left override that makes
// "fdp.exe" read "exe.pdf"), no quotes or backslashes that would end a header's quoted string.
func validateFileName(name string) error {
	if err := validateText("name", name, 1, maxFileNameLen); err != nil {
		return err
	}
	if name == "." || name == ".." || strings.TrimSpace(name) != name {
		return domain.Invalidf("name", "must be a file name without leading or trailing spaces")
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r == '"' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return domain.Invalidf("name", "must not contain slashes, backslashes, quotes or control characters")
		}
	}
	return nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return true
}

// applyFile applies the file events; it reports whether e was one.
func (c *Course) applyFile(e domain.Event) bool {
	switch e := e.(type) {
	case ModuleFileUploadStarted:
		if _, ok := c.files[e.FileID]; ok {
			return true // StartModuleFileUpload never records a file twice
		}
		if c.files == nil {
			c.files = make(map[string]*moduleFile)
		}
		c.files[e.FileID] = &moduleFile{upload: FileUpload{FileID: e.FileID, ModuleID: e.ModuleID, Name: e.Name, Type: e.Type,
			Size: e.Size, SHA256: e.SHA256}}
	case *ModuleFileUploadStarted:
		if e != nil {
			c.applyFile(*e)
		}
	case ModuleFileAttached:
		if f, ok := c.files[e.FileID]; ok {
			f.attached = true
		}
	case *ModuleFileAttached:
		if e != nil {
			c.applyFile(*e)
		}
	default:
		return false
	}
	return true
}
