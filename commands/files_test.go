package commands_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/modulefiles"
)

// filesEnv is a handler whose module files are kept in a directory bucket of the test's own.
func filesEnv(t *testing.T) (*env, *blob.Bucket) {
	t.Helper()
	signer := fileblob.NewURLSignerHMAC(&url.URL{Path: "/v1/files/signed"}, []byte("a-key-for-the-tests-of-file-commands"))
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{URLSigner: signer, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	store, err := modulefiles.New(b, modulefiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, commands.Options{Files: store, FileLimits: course.FileLimits{MaxSize: 1 << 20, Types: []string{"application/pdf"}}})
	e.do(e.h, append(publishedCourse(), registered("ins2", "instructor"))...)
	return e, b
}

var notes = []byte("%PDF-1.7\n" + strings.Repeat("% notes\n", 50) + "%%EOF\n")

func declared(data []byte) course.FileUpload {
	sum := sha256.Sum256(data)
	return course.FileUpload{FileID: "f1", ModuleID: "m1", Name: "notes.pdf", Type: "application/pdf", Size: int64(len(data)),
		SHA256: hex.EncodeToString(sum[:])}
}

func as(a domain.Actor) commands.Meta {
	m := meta()
	m.Actor = a
	return m
}

func TestStartModuleFileUpload(t *testing.T) {
	ctx := context.Background()
	e, _ := filesEnv(t)
	start := commands.StartModuleFileUpload{CourseID: "go", Upload: declared(notes)}
	t.Run("is refused to those who do not teach the course", func(t *testing.T) {
		_, err := e.h.StartModuleFileUpload(ctx, as(ins2), start)
		if !errors.Is(err, course.ErrNotFound) {
			t.Errorf("another instructor: %v; want course not found", err)
		}
		_, err = e.h.StartModuleFileUpload(ctx, as(ada), start)
		if !errors.Is(err, commands.ErrForbidden) {
			t.Errorf("a learner: %v; want forbidden", err)
		}
	})
	m := as(ins)
	first, err := e.h.StartModuleFileUpload(ctx, m, start)
	if err != nil {
		t.Fatal(err)
	}
	if first.FileID != "f1" || first.ID != "f1" || !strings.HasPrefix(first.UploadURL, "/v1/files/signed?") ||
		!strings.Contains(first.UploadURL, "contentType=application%2Fpdf") || !first.ExpiresAt.After(time.Now()) {
		t.Errorf("answer %+v; want the file, a signed URL naming the type, and its expiry", first)
	}
	t.Run("answers a retry with the same file and appends nothing", func(t *testing.T) {
		head := e.head()
		again, err := e.h.StartModuleFileUpload(ctx, m, start)
		if err != nil || again.FileID != "f1" || again.Position != first.Position || e.head() != head {
			t.Errorf("retry: %+v, %v; want file f1 at position %d, nothing appended", again, err, first.Position)
		}
	})
	t.Run("is refused past the size cap", func(t *testing.T) {
		big := start
		big.Upload.FileID, big.Upload.Size = "f2", 1<<20+1
		_, err := e.h.StartModuleFileUpload(ctx, as(ins), big)
		if de := (*domain.Error)(nil); !errors.As(err, &de) || de.Field != "size" {
			t.Errorf("a file over the cap: %v; want an error on size", err)
		}
	})
}

func TestCompleteModuleFileUpload(t *testing.T) {
	ctx := context.Background()
	e, b := filesEnv(t)
	u := declared(notes)
	if _, err := e.h.StartModuleFileUpload(ctx, as(ins), commands.StartModuleFileUpload{CourseID: "go", Upload: u}); err != nil {
		t.Fatal(err)
	}
	uploadKey := modulefiles.UploadKey("go", "f1", u.Size)
	complete := commands.CompleteModuleFileUpload{CourseID: "go", ModuleID: "m1", FileID: "f1"}

	t.Run("finds nothing before the upload", func(t *testing.T) {
		_, err := e.h.CompleteModuleFileUpload(ctx, as(ins), complete)
		if !errors.Is(err, course.ErrNotUploaded) {
			t.Errorf("complete: %v; want not uploaded", err)
		}
	})
	t.Run("refuses other bytes and deletes them", func(t *testing.T) {
		if err := b.WriteAll(ctx, uploadKey, []byte(strings.ToUpper(string(notes))), nil); err != nil {
			t.Fatal(err)
		}
		head := e.head()
		_, err := e.h.CompleteModuleFileUpload(ctx, as(ins), complete)
		var mismatch *course.MismatchError
		if !errors.As(err, &mismatch) || mismatch.Field != "sha256" || e.head() != head {
			t.Errorf("complete: %v; want a mismatch of sha256 and nothing appended", err)
		}
		if ok, _ := b.Exists(ctx, uploadKey); ok {
			t.Error("the refused upload is still there")
		}
	})
	t.Run("is refused to another instructor, and under another module", func(t *testing.T) {
		if _, err := e.h.CompleteModuleFileUpload(ctx, as(ins2), complete); !errors.Is(err, course.ErrNotFound) {
			t.Errorf("another instructor: %v; want course not found", err)
		}
		other := complete
		other.ModuleID = "m2"
		if _, err := e.h.CompleteModuleFileUpload(ctx, as(ins), other); !errors.Is(err, course.ErrFileNotFound) {
			t.Errorf("under m2: %v; want file not found", err)
		}
	})
	t.Run("attaches the declared bytes", func(t *testing.T) {
		if err := b.WriteAll(ctx, uploadKey, notes, nil); err != nil {
			t.Fatal(err)
		}
		res, err := e.h.CompleteModuleFileUpload(ctx, as(ins), complete)
		if err != nil || res.ID != "f1" {
			t.Fatalf("complete: %+v, %v", res, err)
		}
		events := e.decode(e.read("course-go"))
		want := course.ModuleFileAttached{CourseID: "go", ModuleID: "m1", FileID: "f1", Name: "notes.pdf", Type: "application/pdf",
			Size: u.Size, SHA256: u.SHA256, BlobKey: modulefiles.FileKey("go", "f1"), At: t0}
		if got := events[len(events)-1]; got != want {
			t.Errorf("last event %#v; want %#v", got, want)
		}
		if ok, _ := b.Exists(ctx, uploadKey); ok {
			t.Error("the upload is still there once attached")
		}
		head := e.head()
		if again, err := e.h.CompleteModuleFileUpload(ctx, as(ins), complete); err != nil || e.head() != head || again.Position != res.Position {
			t.Errorf("complete again: %+v, %v; want the same position and nothing appended", again, err)
		}
	})
}
