package writeapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"gocloud.dev/blob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/imagefile"
	"github.com/edutrack/edutrack/internal/problem"
)

// Originals is where uploaded images are kept until, and after, their variants are made: a
// gocloud.dev *blob.Bucket, opened where the process is wired. What is stored there is never
// served: the originals carry their metadata (GPS included) and whatever else the file held.
type Originals interface {
	WriteAll(ctx context.Context, key string, p []byte, opts *blob.WriterOptions) error
}

// ImageOptions are the limits of image uploads.
type ImageOptions struct {
	// MaxBytes caps an upload's body (default 10 MiB).
	MaxBytes int64
	// MaxPixels caps the pixels an image's header may claim (default 40 million).
	MaxPixels int
	// Decodes is how many uploads are decoded at once (default 2): a 40-megapixel PNG takes
	// 160 MiB while it is checked; more uploads wait for their turn.
	Decodes int
}

// Images serves the image uploads.
type Images struct {
	h         *commands.Handler
	originals Originals
	log       *slog.Logger
	opts      ImageOptions
	decodes   chan struct{}
}

// NewImages returns the image upload API over h, storing originals in originals.
func NewImages(h *commands.Handler, originals Originals, log *slog.Logger, opts ImageOptions) (*Images, error) {
	if h == nil || originals == nil || log == nil {
		return nil, errors.New("writeapi: handler, originals and logger are required")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 10 << 20
	}
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = 40_000_000
	}
	if opts.Decodes <= 0 {
		opts.Decodes = 2
	}
	return &Images{h: h, originals: originals, log: log, opts: opts, decodes: make(chan struct{}, opts.Decodes)}, nil
}

// Routes mounts the upload route on r, behind the authenticator.
func (a *Images) Routes(r chi.Router) {
	r.With(auth.Restrict(a.log, domain.Instructor, domain.Admin)).Put("/v1/courses/{id}/image", a.upload)
}

// OriginalKey is where the original with digest sum of course id is stored.
func OriginalKey(courseID, sum string) string { return "originals/courses/" + courseID + "/" + sum }

// upload takes a course's image: the body is the file. It answers 202 with the position of the
// upload's event; the variants follow from a job, and a read at that position shows the image
// as processing.
func (a *Images) upload(w http.ResponseWriter, r *http.Request) {
	res, err := a.take(w, r)
	if err != nil {
		problem.Write(w, r, a.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/courses/"+res.ID)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"id":%q,"version":%d,"position":%d}`+"\n", res.ID, res.Version, res.Position)
}

func (a *Images) take(w http.ResponseWriter, r *http.Request) (commands.Result, error) {
	caller, ok := auth.FromContext(r.Context())
	if !ok {
		return commands.Result{}, errNoCaller
	}
	id, err := pathID(r, "id", "course")
	if err != nil {
		return commands.Result{}, err
	}
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id"} {
		if len(r.Header.Get(h)) > maxHeaderLen {
			return commands.Result{}, problem.New(http.StatusBadRequest, h, fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
		}
	}
	return a.Take(r.Context(), ImageUpload{CourseID: id, Body: http.MaxBytesReader(w, r.Body, a.opts.MaxBytes), Size: r.ContentLength,
		Meta: commands.Meta{Actor: caller, RequestID: r.Header.Get("X-Request-Id"), CorrelationID: r.Header.Get("X-Correlation-Id")},
		Key:  r.Header.Get("Idempotency-Key"), Route: r.Method + " " + r.URL.Path})
}

// ImageUpload is one upload of a course's image, however it came: the body of PUT
// /v1/courses/{id}/image, or the file of a GraphQL mutation.
type ImageUpload struct {
	CourseID string
	// Body is the file; Size its length when known, else -1.
	Body io.Reader
	Size int64
	// Meta names the caller and the request; the command's id is Take's to make.
	Meta commands.Meta
	// Key is the request's Idempotency-Key, if any, and Route what it binds to: the same key on
	// the same route is the same command, and the image's digest stands for the body.
	Key, Route string
}

// Take checks and stores an upload and records it on its course, under every rule of the
// upload route: the size cap, whether the caller may change the course (asked before a byte of
// the body is read, so a stranger's bytes never reach the bucket), the bytes sniffed and wholly
// decoded within the pixel cap, the original stored under its digest. It answers the command's
// result, or the problem the route answers.
func (a *Images) Take(ctx context.Context, u ImageUpload) (commands.Result, error) {
	tooLarge := problem.New(http.StatusRequestEntityTooLarge, "image", fmt.Sprintf("must be at most %d bytes", a.opts.MaxBytes))
	if u.Size > a.opts.MaxBytes {
		return commands.Result{}, tooLarge
	}
	if len(u.Key) > maxHeaderLen {
		return commands.Result{}, problem.New(http.StatusBadRequest, "Idempotency-Key", fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
	}
	m := u.Meta
	if err := a.h.MayUploadCourseImage(ctx, m, u.CourseID); err != nil {
		return commands.Result{}, err
	}
	// One byte past the cap tells a body that is too large from one that fits exactly.
	data, err := io.ReadAll(io.LimitReader(u.Body, a.opts.MaxBytes+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(data)) > a.opts.MaxBytes {
		return commands.Result{}, tooLarge
	}
	if err != nil {
		return commands.Result{}, problem.New(http.StatusBadRequest, "image", "the body could not be read")
	}
	info, err := a.check(ctx, data)
	if err != nil {
		return commands.Result{}, err
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	key := OriginalKey(u.CourseID, hexSum)
	if err := a.originals.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "image/" + string(info.Format)}); err != nil {
		return commands.Result{}, fmt.Errorf("store the image of course %s: %w", u.CourseID, err)
	}
	// Without a key, sending the same image again still appends nothing while it is pending
	// or shown: the course decides that.
	if u.Key != "" {
		m.CommandID = commandIDOf(u.Route, m.Actor.UserID, u.Key)
		m.Request = hexSum
	} else {
		m.CommandID = uuid.NewString()
	}
	if m.RequestID == "" {
		m.RequestID = m.CommandID
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.RequestID
	}
	res, err := a.h.UploadCourseImage(ctx, m, commands.UploadCourseImage{CourseID: u.CourseID, Image: course.ImageUpload{
		SHA256: hexSum, Key: key, Format: string(info.Format), Width: info.Width, Height: info.Height, Bytes: int64(len(data))}})
	return res, KeyError(err)
}

// check decodes the whole image, at most Decodes at once, so that a truncated or corrupt file is
// refused now rather than failing its job later; the header's size is checked first.
func (a *Images) check(ctx context.Context, data []byte) (imagefile.Info, error) {
	if _, err := imagefile.Inspect(data, a.opts.MaxPixels); err != nil {
		return imagefile.Info{}, imageProblem(err)
	}
	select {
	case a.decodes <- struct{}{}:
	case <-ctx.Done():
		return imagefile.Info{}, ctx.Err()
	}
	_, info, err := imagefile.Decode(data, a.opts.MaxPixels)
	<-a.decodes
	if err != nil {
		return info, imageProblem(err)
	}
	return info, nil
}

// imageProblem names what is wrong with an uploaded file.
func imageProblem(err error) error {
	switch {
	case errors.Is(err, imagefile.ErrNotImage):
		return problem.New(http.StatusUnsupportedMediaType, "image", "is not a JPEG, PNG, WebP or GIF image (the type is read from the bytes, not from Content-Type)")
	case errors.Is(err, imagefile.ErrTooManyPixels):
		return problem.New(http.StatusUnprocessableEntity, "image", err.Error())
	case errors.Is(err, imagefile.ErrCorrupt):
		return problem.New(http.StatusUnprocessableEntity, "image", err.Error())
	}
	return err
}
