package commands

import (
	"context"
	"errors"
	"time"

	"github.com/edutrack/edutrack/domain/course"
)

// ModuleFiles is where the bytes of module files are kept: a bucket that hands out upload URLs
// and reads an upload back. cmd/edutrack wires it to the blob store.
type ModuleFiles interface {
	// UploadURL returns a URL the client PUTs the declared bytes to, and when it expires.
	UploadURL(ctx context.Context, courseID string, u course.FileUpload) (string, time.Time, error)
	// Ingest reads the upload of u back, and keeps a copy that no upload URL can change once
	// the size and digest agree. An upload that is not there is a zero StoredFile.
	Ingest(ctx context.Context, courseID string, u course.FileUpload) (course.StoredFile, error)
	// Discard deletes the upload of u, and the copy at stored.Key when there is one.
	Discard(ctx context.Context, courseID string, u course.FileUpload, stored course.StoredFile) error
}

// errNoFileStore is answered by the file commands of a Handler made without ModuleFiles.
var errNoFileStore = errors.New("commands: this process has no blob store for module files")

// StartModuleFileUpload declares a file of a module, so that its bytes can be uploaded.
type StartModuleFileUpload struct {
	CourseID string
	Upload   course.FileUpload
}

// FileUploadResult is the answer to StartModuleFileUpload: where to PUT the bytes, and until
// when. Result.ID is the file's id.
type FileUploadResult struct {
	Result
	FileID    string    `json:"fileId"`
	UploadURL string    `json:"uploadUrl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// StartModuleFileUpload executes c. A retry answers a fresh URL for the same file.
func (h *Handler) StartModuleFileUpload(ctx context.Context, m Meta, c StartModuleFileUpload) (FileUploadResult, error) {
	if h.files == nil {
		return FileUploadResult{}, errNoFileStore
	}
	res, err := h.changeCourse(ctx, m, c.CourseID, func(co *course.Course) error {
		return co.StartModuleFileUpload(c.Upload, h.fileLimits, h.now())
	})
	if err != nil {
		return FileUploadResult{}, err
	}
	res.ID = c.Upload.FileID
	url, expires, err := h.files.UploadURL(ctx, c.CourseID, c.Upload)
	if err != nil {
		return FileUploadResult{}, err
	}
	return FileUploadResult{Result: res, FileID: c.Upload.FileID, UploadURL: url, ExpiresAt: expires}, nil
}

// CompleteModuleFileUpload checks the uploaded bytes of a declared file and, when they match
// the declaration, lists the file on its module.
type CompleteModuleFileUpload struct {
	CourseID string
	ModuleID string
	FileID   string
}

// CompleteModuleFileUpload executes c. Bytes that do not match are deleted with their upload,
// and the error (a *course.MismatchError) names what differs; the declaration stays, so the
// client may upload again while its URL lasts. Completing a completed file changes nothing.
func (h *Handler) CompleteModuleFileUpload(ctx context.Context, m Meta, c CompleteModuleFileUpload) (Result, error) {
	if h.files == nil {
		return Result{}, errNoFileStore
	}
	var (
		u        course.FileUpload
		attached bool
	)
	// The bytes are read outside the course's lock: a large file would hold up every other
	// command on the course while it is hashed.
	err := h.courses.view(ctx, c.CourseID, func(co *course.Course) error {
		if err := m.mayChange(co); err != nil {
			return err
		}
		var ok bool
		if u, ok = co.FileUpload(c.FileID); !ok || u.ModuleID != c.ModuleID {
			return course.ErrFileNotFound.WithField("fileId")
		}
		attached = co.FileAttached(c.FileID)
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	var stored course.StoredFile
	if !attached {
		if stored, err = h.files.Ingest(ctx, c.CourseID, u); err != nil {
			return Result{}, err
		}
	}
	res, err := h.changeCourse(ctx, m, c.CourseID, func(co *course.Course) error {
		return co.AttachModuleFile(c.FileID, stored, h.now())
	})
	res.ID = c.FileID
	var mismatch *course.MismatchError
	if errors.As(err, &mismatch) {
		if derr := h.files.Discard(ctx, c.CourseID, u, stored); derr != nil {
			return Result{}, errors.Join(err, derr)
		}
	}
	if err != nil || !res.Changed {
		return res, err
	}
	// The verified copy is what is served: the upload may go. A failure leaves an orphan the
	// upload's URL can no longer reach once expired, not a wrong answer.
	_ = h.files.Discard(ctx, c.CourseID, u, course.StoredFile{})
	return res, nil
}

// fileOptions checks the options of the module files.
func fileOptions(opts Options) error {
	if opts.Files != nil && (opts.FileLimits.MaxSize <= 0 || len(opts.FileLimits.Types) == 0) {
		return errors.New("commands: module files need a size cap and allowed types")
	}
	return nil
}
