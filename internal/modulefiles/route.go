package modulefiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/internal/problem"
)

// Verifier checks a URL the bucket signed and returns the object key it names: gocloud.dev's
// fileblob.URLSignerHMAC is one. It refuses URLs that are tampered with or expired.
type Verifier interface {
	KeyFromURL(ctx context.Context, u *url.URL) (string, error)
}

// transferTimeout bounds one upload or download through the signed route, in place of the
// server's read and write timeouts, which are sized for API calls.
const transferTimeout = 30 * time.Minute

var errBadSignature = problem.New(http.StatusForbidden, "signature", "the link is not valid or has expired; ask for a new one")

// Route serves the URLs a bucket without URLs of its own signs (a directory bucket, whose
// signer's base URL points here): a PUT of an upload, capped at its declared size and with the
// signed Content-Type, and a GET of a verified file, as a download. It needs no token: the
// signature is the permission, for what its method and key name and no longer than its expiry.
func (s *Store) Route(v Verifier, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.serveSigned(w, r, v); err != nil {
			problem.Write(w, r, log, err)
		}
	}
}

func (s *Store) serveSigned(w http.ResponseWriter, r *http.Request, v Verifier) error {
	key, err := v.KeyFromURL(r.Context(), r.URL)
	if err != nil {
		return errBadSignature
	}
	q := r.URL.Query()
	// The signer signs the method, but checking it is the route's: a download link must not
	// overwrite what it names.
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if q.Get("method") != method {
		return errBadSignature
	}
	rc := http.NewResponseController(w)
	switch method {
	case http.MethodPut:
		_ = rc.SetReadDeadline(time.Now().Add(transferTimeout))
		return s.receive(w, r, key, q.Get("contentType"))
	case http.MethodGet:
		_ = rc.SetWriteDeadline(time.Now().Add(transferTimeout))
		return s.send(w, r, key)
	}
	return problem.New(http.StatusMethodNotAllowed, "", "the route takes GET and PUT")
}

// receive stores an upload's body, refusing one larger than the size its key declares.
func (s *Store) receive(w http.ResponseWriter, r *http.Request, key, contentType string) error {
	size, ok := uploadSize(key)
	if !ok {
		return errBadSignature // EduTrack signs PUTs of uploads only
	}
	if got := r.Header.Get("Content-Type"); contentType != "" && got != contentType {
		return problem.New(http.StatusBadRequest, "Content-Type", fmt.Sprintf("must be %s, as declared", contentType))
	}
	if r.ContentLength > size {
		return problem.New(http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than the %d bytes declared", size))
	}
	body := http.MaxBytesReader(w, r.Body, size)
	ctx, abort := context.WithCancel(r.Context())
	defer abort()
	bw, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if _, err := bw.ReadFrom(body); err != nil {
		abort() // nothing of a refused body is kept
		_ = bw.Close()
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return problem.New(http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than the %d bytes declared", size))
		}
		return problem.New(http.StatusBadRequest, "", "the body could not be read to its end")
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := s.opts.Written(key); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// send serves a verified file as a download: its declared type, offered under its name, with
// ranges and validators from http.ServeContent.
func (s *Store) send(w http.ResponseWriter, r *http.Request, key string) error {
	if !strings.HasPrefix(key, filePrefix) {
		return errBadSignature // EduTrack signs GETs of verified files only
	}
	attrs, err := s.bucket.Attributes(r.Context(), key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return problem.New(http.StatusNotFound, "", "the file is no longer stored")
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	rd, err := s.bucket.NewReader(r.Context(), key, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rd.Close()
	h := w.Header()
	h.Set("Content-Type", attrs.ContentType)
	h.Set("Content-Disposition", attrs.ContentDisposition)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=300")
	http.ServeContent(w, r, "", attrs.ModTime, rd)
	return nil
}
