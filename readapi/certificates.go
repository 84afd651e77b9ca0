package readapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// Blobs is where the certificates' PDFs are read: a gocloud.dev *blob.Bucket, opened by URL
// where the process is wired.
type Blobs interface {
	NewReader(ctx context.Context, key string, opts *blob.ReaderOptions) (*blob.Reader, error)
}

// PublicRoutes mounts the routes that take no token on r: the verification of a certificate,
// which an employer reads from the URL printed on it.
func (a *API) PublicRoutes(r chi.Router) {
	r.Get("/v1/certificates/{certificateId}", a.handle(a.verifyCertificate))
}

// verifyCertificate answers what a certificate attests, and nothing else: the learner's name
// and the course's title as printed on it, the completion's date and the PDF's digest.
func (a *API) verifyCertificate(r *http.Request) (readhttp.Reply, error) {
	if err := readhttp.OnlyParams(r, "minPosition"); err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.LearnersProjection); err != nil {
		return readhttp.Reply{}, err
	}
	id := chi.URLParam(r, "certificateId")
	if !domain.ValidID(id) {
		return readhttp.Reply{}, readhttp.NotFound("certificate")
	}
	c, pos, err := a.certificate(r.Context(), id)
	if err != nil {
		return readhttp.Reply{}, err
	}
	body, err := json.Marshal(c.Verification)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return readhttp.Reply{Body: body, ETag: `"` + strconv.FormatUint(pos, 10) + `"`}, nil
}

// certificate reads a certificates document from the store. They never change once written, so
// the cache is not needed to serve them fresh, and is left to the documents that change.
func (a *API) certificate(ctx context.Context, id string) (documents.Certificate, uint64, error) {
	d, err := a.store.Get(ctx, documents.Certificates, id)
	if errors.Is(err, readstore.ErrNotFound) {
		return documents.Certificate{}, 0, readhttp.NotFound("certificate")
	}
	if err != nil {
		return documents.Certificate{}, 0, err
	}
	var c documents.Certificate
	if err := json.Unmarshal(d.Body, &c); err != nil {
		return documents.Certificate{}, 0, fmt.Errorf("decode certificate %s: %w", id, err)
	}
	return c, d.Position, nil
}

// certificatePDF streams the PDF of a learner's certificate of a course, to those
// access.ReadCertificate lets read it. Its ETag is the PDF's SHA-256, which never changes.
func (a *API) certificatePDF(w http.ResponseWriter, r *http.Request) {
	if err := a.servePDF(w, r); err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		problem.Write(w, r, a.log, err)
	}
}

func (a *API) servePDF(w http.ResponseWriter, r *http.Request) error {
	if err := readhttp.OnlyParams(r, "minPosition", "reason"); err != nil {
		return err
	}
	caller, err := access.Caller(r)
	if err != nil {
		return err
	}
	learnerID, courseID := chi.URLParam(r, "id"), chi.URLParam(r, "courseId")
	if caller.Role == domain.Learner && caller.UserID != learnerID || caller.Role == domain.Auditor {
		return readhttp.NotFound("certificate") // whatever exists, before reading anything
	}
	if err := a.consistency.WaitFor(r, documents.LearnersProjection, documents.CoursesProjection); err != nil {
		return err
	}
	e, err := a.Load(r.Context(), documents.LearnersProjection, documents.Dashboards, learnerID, "certificate")
	if err != nil {
		return err
	}
	var d documents.Dashboard
	if err := json.Unmarshal(e.Body, &d); err != nil {
		return fmt.Errorf("decode the dashboard of %s: %w", learnerID, err)
	}
	var ref *documents.CertificateRef
	for _, en := range d.Enrollments {
		if en.CourseID == courseID {
			ref = en.Certificate
		}
	}
	if ref == nil {
		return readhttp.NotFound("certificate")
	}
	instructorID := ""
	if caller.Role == domain.Instructor {
		details, err := a.Load(r.Context(), documents.CoursesProjection, documents.CourseDetails, courseID, "certificate")
		if err != nil {
			return err
		}
		course, err := access.DecodeCourse(details.Body)
		if err != nil {
			return err
		}
		instructorID = course.Instructor.ID
	}
	read, err := access.ReadCertificate(r, learnerID, instructorID, a.opts.Disclosures)
	if err != nil {
		return err
	}
	c, _, err := a.certificate(r.Context(), ref.ID)
	if err != nil {
		return err
	}
	if a.opts.Blobs == nil {
		return problem.New(http.StatusServiceUnavailable, "", "this process has no blob store to read certificates from")
	}
	if err := read.Disclose(r.Context()); err != nil {
		return err
	}
	h := w.Header()
	etag := `"` + c.SHA256 + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && readhttp.ETagMatches(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	pdf, err := a.opts.Blobs.NewReader(r.Context(), c.BlobKey, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("certificate %s: its PDF %s is not in the blob store: %w", c.CertificateID, c.BlobKey, err)
	}
	if err != nil {
		a.log.Warn("the blob store failed a certificate read", "certificate", c.CertificateID, "err", err)
		return problem.New(http.StatusServiceUnavailable, "", "the certificates' store does not answer; try again later")
	}
	defer pdf.Close()
	h.Set("Content-Type", "application/pdf")
	h.Set("Content-Length", strconv.FormatInt(pdf.Size(), 10))
	h.Set("Content-Disposition", `inline; filename="certificate-`+courseID+`.pdf"`)
	if r.Method == http.MethodHead {
		return nil // the server would refuse the body
	}
	if _, err := io.Copy(w, pdf); err != nil {
		// The status is sent: all that is left is to say why the body ended short.
		a.log.Warn("a certificate's PDF was cut short", "certificate", c.CertificateID, "err", err)
	}
	return nil
}
