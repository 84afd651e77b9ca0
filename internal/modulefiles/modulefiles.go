// Package modulefiles keeps the files of course modules as objects of a gocloud.dev bucket:
// it signs the URLs clients upload and download them with, reads an upload back to check it
// against its declaration, and serves the signed route of a bucket that has no URLs of its own
// (a directory on the embedded default).
package modulefiles

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/domain/course"
)

// Key layout. An upload's key names the declared size, so the signed route of a directory
// bucket knows the cap of a PUT from the signed key alone. A file's verified copy has a key of
// its own that no upload URL names, so nobody can change the bytes once they are checked.
const (
	uploadPrefix = "uploads/"
	filePrefix   = "module-files/"
)

// UploadKey is where the bytes of an upload of declared size are put.
func UploadKey(courseID, fileID string, size int64) string {
	return uploadPrefix + courseID + "/" + fileID + "/" + strconv.FormatInt(size, 10)
}

// FileKey is where the verified copy of a file is kept.
func FileKey(courseID, fileID string) string { return filePrefix + courseID + "/" + fileID }

// uploadSize is the declared size an upload key names, or false for any other key.
func uploadSize(key string) (int64, bool) {
	if !strings.HasPrefix(key, uploadPrefix) || strings.Count(key, "/") != 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(key[strings.LastIndexByte(key, '/')+1:], 10, 64)
	return n, err == nil && n > 0
}

// Defaults of Options.
const (
	DefaultUploadExpiry   = 15 * time.Minute
	DefaultDownloadExpiry = 5 * time.Minute
)

// Options tune a Store.
type Options struct {
	// UploadExpiry is how long an upload URL lasts (DefaultUploadExpiry).
	UploadExpiry time.Duration
	// DownloadExpiry is how long a download URL lasts (DefaultDownloadExpiry).
	DownloadExpiry time.Duration
	// Written, if not nil, is called with the key of each object the Store writes; a directory
	// bucket narrows the file's mode with it.
	Written func(key string) error
}

// Store keeps module files in a bucket. It is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	opts   Options
}

// New returns a Store over bucket, which must be able to sign URLs.
func New(bucket *blob.Bucket, opts Options) (*Store, error) {
	if bucket == nil {
		return nil, errors.New("modulefiles: a bucket is required")
	}
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = DefaultUploadExpiry
	}
	if opts.DownloadExpiry <= 0 {
		opts.DownloadExpiry = DefaultDownloadExpiry
	}
	if opts.Written == nil {
		opts.Written = func(string) error { return nil }
	}
	return &Store{bucket: bucket, opts: opts}, nil
}

// UploadURL signs a PUT of u's bytes. The declared type is part of the signature where the
// bucket can enforce it (a directory bucket's route does; S3 presigning in the AWS SDK v2
// cannot), and checked from the bytes at completion in any case.
func (s *Store) UploadURL(ctx context.Context, courseID string, u course.FileUpload) (string, time.Time, error) {
	key := UploadKey(courseID, u.FileID, u.Size)
	expires := time.Now().Add(s.opts.UploadExpiry).Truncate(time.Second)
	opts := &blob.SignedURLOptions{Method: http.MethodPut, Expiry: s.opts.UploadExpiry, ContentType: u.Type}
	url, err := s.bucket.SignedURL(ctx, key, opts)
	if gcerrors.Code(err) == gcerrors.Unimplemented {
		opts.ContentType = ""
		url, err = s.bucket.SignedURL(ctx, key, opts)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign the upload of %s: %w", key, err)
	}
	return url, expires, nil
}

// DownloadURL signs a GET of the verified copy of a file, valid for Options.DownloadExpiry.
func (s *Store) DownloadURL(ctx context.Context, courseID, fileID string) (string, error) {
	key := FileKey(courseID, fileID)
	url, err := s.bucket.SignedURL(ctx, key, &blob.SignedURLOptions{Method: http.MethodGet, Expiry: s.opts.DownloadExpiry})
	if err != nil {
		return "", fmt.Errorf("sign the download of %s: %w", key, err)
	}
	return url, nil
}

// sniffLen is how much of the head of a file the type is sniffed from: mimetype's own default.
const sniffLen = 3072

// Ingest reads the upload of u back, at most one byte past the declared size, hashing it and
// sniffing its type from its first bytes. When the size and the digest agree, the bytes read
// are written to the file's own key, in the same pass, with the declared type and a download
// name as attributes; so the copy is exactly the bytes that were hashed, whatever happens to the
// upload meanwhile. Otherwise nothing is kept. An upload that is not there is a zero StoredFile.
func (s *Store) Ingest(ctx context.Context, courseID string, u course.FileUpload) (course.StoredFile, error) {
	upload := UploadKey(courseID, u.FileID, u.Size)
	r, err := s.bucket.NewReader(ctx, upload, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return course.StoredFile{}, nil
	}
	if err != nil {
		return course.StoredFile{}, fmt.Errorf("read the upload %s: %w", upload, err)
	}
	defer r.Close()
	key := FileKey(courseID, u.FileID)
	// Cancelling the writer's context before Close aborts the write: nothing is stored.
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: u.Type,
		ContentDisposition: Attachment(u.Name), CacheControl: "private, max-age=300"})
	if err != nil {
		return course.StoredFile{}, fmt.Errorf("write %s: %w", key, err)
	}
	hash := sha256.New()
	head := &headBuffer{max: sniffLen}
	n, err := io.Copy(io.MultiWriter(w, hash, head), io.LimitReader(r, u.Size+1))
	stored := course.StoredFile{Size: n, SHA256: hex.EncodeToString(hash.Sum(nil)), Types: Sniff(head.b)}
	if err != nil || n != u.Size || stored.SHA256 != u.SHA256 {
		abort()
		_ = w.Close()
		if err != nil {
			return course.StoredFile{}, fmt.Errorf("copy %s to %s: %w", upload, key, err)
		}
		return stored, nil
	}
	if err := w.Close(); err != nil {
		return course.StoredFile{}, fmt.Errorf("write %s: %w", key, err)
	}
	if err := s.opts.Written(key); err != nil {
		return course.StoredFile{}, err
	}
	stored.Key = key
	if stored.ZIP, err = s.isZip(ctx, key, n); err != nil {
		return course.StoredFile{}, err
	}
	return stored, nil
}

// isZip tells whether the object opens as a ZIP archive. A ZIP is read from its end, so bytes
// that begin as a PDF or an image can be one too, and Go's reader accepts data in front of it.
func (s *Store) isZip(ctx context.Context, key string, size int64) (bool, error) {
	ra := &rangeReaderAt{ctx: ctx, bucket: s.bucket, key: key}
	_, err := zip.NewReader(ra, size)
	if ra.err != nil {
		return false, ra.err
	}
	return err == nil, nil
}

// Discard deletes the upload of u, and the copy at stored.Key when there is one. Objects
// already gone are no error.
func (s *Store) Discard(ctx context.Context, courseID string, u course.FileUpload, stored course.StoredFile) error {
	keys := []string{UploadKey(courseID, u.FileID, u.Size)}
	if stored.Key != "" {
		keys = append(keys, stored.Key)
	}
	var errs []error
	for _, k := range keys {
		if err := s.bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// Sniff returns the media types of a file from its first bytes: the most specific first, then
// those it is a kind of, up to application/octet-stream. Parameters such as a text's charset
// are left off.
func Sniff(head []byte) []string {
	var out []string
	for m := mimetype.Detect(head); m != nil; m = m.Parent() {
		t, _, err := mime.ParseMediaType(m.String())
		if err != nil {
			t = m.String()
		}
		out = append(out, t)
	}
	return out
}

// Attachment is the Content-Disposition that offers a file for download under name: quoted,
// or as filename* (RFC 2231) when it is not ASCII. The domain keeps quotes, backslashes and
// control characters out of file names besides.
func Attachment(name string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": name})
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// rangeReaderAt reads an object at offsets, one range request each; the ZIP reader asks for
// the end of the archive and its directory, a few reads.
type rangeReaderAt struct {
	ctx    context.Context
	bucket *blob.Bucket
	key    string
	err    error // the first failure of the store, as against an archive that is not one
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rr, err := r.bucket.NewRangeReader(r.ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		r.err = err
		return 0, err
	}
	defer rr.Close()
	n, err := io.ReadFull(rr, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	} else if err != nil {
		r.err = err
	}
	return n, err
}
