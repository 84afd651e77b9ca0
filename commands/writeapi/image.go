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
	tooLarge := problem.New(http.StatusRequestEntityTooLarge, "image", fmt.Sprintf("must be at most %d bytes", a.opts.MaxBytes))
	if r.ContentLength > a.opts.MaxBytes {
		return commands.Result{}, tooLarge
	}
	// Whether the caller may change the course is asked before the body is read and stored:
	// a stranger's bytes never reach the bucket.
	m := commands.Meta{Actor: caller, RequestID: r.Header.Get("X-Request-Id"), CorrelationID: r.Header.Get("X-Correlation-Id")}
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id"} {
		if len(r.Header.Get(h)) > maxHeaderLen {
			return commands.Result{}, problem.New(http.StatusBadRequest, h, fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
		}
	}
	if err := a.h.MayUploadCourseImage(r.Context(), m, id); err != nil {
		return commands.Result{}, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return commands.Result{}, tooLarge
	}
	if err != nil {
		return commands.Result{}, problem.New(http.StatusBadRequest, "image", "the body could not be read")
	}
	info, err := a.check(r.Context(), data)
	if err != nil {
		return commands.Result{}, err
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	key := OriginalKey(id, hexSum)
	if err := a.originals.WriteAll(r.Context(), key, data, &blob.WriterOptions{ContentType: "image/" + string(info.Format)}); err != nil {
		return commands.Result{}, fmt.Errorf("store the image of course %s: %w", id, err)
	}
	// An Idempotency-Key names the command as on every route, and the image's digest stands for
	// the body it is bound to. Without one, sending the same image again still appends nothing
	// while it is pending or shown: the course decides that.
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		if len(k) > maxHeaderLen {
			return commands.Result{}, problem.New(http.StatusBadRequest, "Idempotency-Key", fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
		}
		m.CommandID = uuid.NewSHA1(commandNamespace, []byte(r.Method+" "+r.URL.Path+"\n"+caller.UserID+"\n"+k)).String()
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
	res, err := a.h.UploadCourseImage(r.Context(), m, commands.UploadCourseImage{CourseID: id, Image: course.ImageUpload{
		SHA256: hexSum, Key: key, Format: string(info.Format), Width: info.Width, Height: info.Height, Bytes: int64(len(data))}})
	if errors.Is(err, commands.ErrRequestMismatch) {
		err = errKeyReused
	}
	return res, err
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
