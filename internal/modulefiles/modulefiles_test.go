package modulefiles_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/modulefiles"
)

var testKey = []byte("a-key-for-the-tests-of-module-files")

// newStore is a Store over a directory bucket whose links point at a test server of its route.
func newStore(t *testing.T) (*modulefiles.Store, *blob.Bucket, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL + "/signed")
	signer := fileblob.NewURLSignerHMAC(base, testKey)
	b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{URLSigner: signer, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := modulefiles.New(b, modulefiles.Options{UploadExpiry: time.Minute, DownloadExpiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/signed", s.Route(signer, slog.New(slog.DiscardHandler)))
	return s, b, srv
}

func upload(data []byte, typ string) course.FileUpload {
	sum := sha256.Sum256(data)
	return course.FileUpload{FileID: "f-1", ModuleID: "m1", Name: "Notes 1.pdf", Type: typ, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func put(t *testing.T, link, typ string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, link, bytes.NewReader(body))
	req.Header.Set("Content-Type", typ)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var pdf = []byte("%PDF-1.7\n" + strings.Repeat("% lecture notes\n", 100) + "%%EOF\n")

func TestIngest(t *testing.T) {
	ctx := context.Background()
	t.Run("keeps a copy of bytes that match, with the declared type and name", func(t *testing.T) {
		s, b, _ := newStore(t)
		u := upload(pdf, "application/pdf")
		link, _, err := s.UploadURL(ctx, "go", u)
		if err != nil {
			t.Fatal(err)
		}
		if code := put(t, link, u.Type, pdf); code != http.StatusOK {
			t.Fatalf("PUT: %d", code)
		}
		got, err := s.Ingest(ctx, "go", u)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != modulefiles.FileKey("go", "f-1") || got.Size != u.Size || got.SHA256 != u.SHA256 || got.ZIP ||
			!slices.Contains(got.Types, "application/pdf") {
			t.Errorf("Ingest = %+v; want the copy's key, the size, digest and type declared, no ZIP", got)
		}
		attrs, err := b.Attributes(ctx, got.Key)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.ContentType != "application/pdf" || attrs.ContentDisposition != `attachment; filename="Notes 1.pdf"` {
			t.Errorf("the copy's attributes: %q, %q", attrs.ContentType, attrs.ContentDisposition)
		}
		copied, _ := b.ReadAll(ctx, got.Key)
		if !bytes.Equal(copied, pdf) {
			t.Errorf("the copy holds %d bytes, not the upload's", len(copied))
		}
		if err := s.Discard(ctx, "go", u, course.StoredFile{}); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.Exists(ctx, modulefiles.UploadKey("go", "f-1", u.Size)); ok {
			t.Error("Discard left the upload")
		}
		if ok, _ := b.Exists(ctx, got.Key); !ok {
			t.Error("Discard of the upload alone deleted the copy")
		}
	})
	for _, c := range []struct {
		name  string
		bytes []byte
		want  func(course.StoredFile) bool
	}{
		{"more bytes than declared", append(bytes.Clone(pdf), 'x'), func(s course.StoredFile) bool { return s.Size == int64(len(pdf))+1 }},
		{"fewer bytes than declared", pdf[:100], func(s course.StoredFile) bool { return s.Size == 100 }},
		{"other bytes of the same size", bytes.ToUpper(pdf), func(s course.StoredFile) bool { return s.Size == int64(len(pdf)) }},
	} {
		t.Run("keeps nothing of "+c.name, func(t *testing.T) {
			s, b, _ := newStore(t)
			u := upload(pdf, "application/pdf")
			// Written straight into the bucket, as a client can on S3, whatever the size.
			if err := b.WriteAll(ctx, modulefiles.UploadKey("go", "f-1", u.Size), c.bytes, nil); err != nil {
				t.Fatal(err)
			}
			got, err := s.Ingest(ctx, "go", u)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != "" || got.SHA256 == u.SHA256 || !c.want(got) {
				t.Errorf("Ingest = %+v; want no copy and what was read", got)
			}
			if ok, _ := b.Exists(ctx, modulefiles.FileKey("go", "f-1")); ok {
				t.Error("a copy of refused bytes was kept")
			}
		})
	}
	t.Run("answers nothing for an upload never made", func(t *testing.T) {
		s, _, _ := newStore(t)
		got, err := s.Ingest(ctx, "go", upload(pdf, "application/pdf"))
		if err != nil || got.Key != "" || got.Size != 0 {
			t.Errorf("Ingest = %+v, %v; want a zero StoredFile", got, err)
		}
	})
	t.Run("tells a PDF that is also a ZIP", func(t *testing.T) {
		var buf bytes.Buffer
		buf.Write(pdf)
		zw := zip.NewWriter(&buf)
		zw.SetOffset(int64(buf.Len()))
		f, _ := zw.Create("a.txt")
		f.Write([]byte("hello"))
		zw.Close()
		s, b, _ := newStore(t)
		u := upload(buf.Bytes(), "application/pdf")
		if err := b.WriteAll(ctx, modulefiles.UploadKey("go", "f-1", u.Size), buf.Bytes(), nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Ingest(ctx, "go", u)
		if err != nil {
			t.Fatal(err)
		}
		if !got.ZIP || got.Types[0] != "application/pdf" {
			t.Errorf("Ingest = %+v; want a PDF that is a ZIP too", got)
		}
	})
}

func TestSniff(t *testing.T) {
	var docx bytes.Buffer
	zw := zip.NewWriter(&docx)
	for _, name := range []string{"[Content_Types].xml", "word/document.xml"} {
		f, _ := zw.Create(name)
		io.WriteString(f, "<xml/>")
	}
	zw.Close()
	for _, c := range []struct {
		name string
		head []byte
		want []string
	}{
		{"a PDF", pdf, []string{"application/pdf"}},
		{"a Word document, a kind of ZIP", docx.Bytes(), []string{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/zip"}},
		{"a PNG", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), []string{"image/png"}},
		{"HTML, a kind of text", []byte("<!DOCTYPE html><html><script>alert(1)</script>"), []string{"text/html", "text/plain"}},
	} {
		got := modulefiles.Sniff(c.head)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("Sniff(%s) = %v; want %v among them", c.name, got, c.want)
			}
		}
		if got[0] != c.want[0] {
			t.Errorf("Sniff(%s) = %v; want %s first", c.name, got, c.want[0])
		}
	}
}

func TestRoute(t *testing.T) {
	ctx := context.Background()
	s, b, srv := newStore(t)
	u := upload(pdf, "application/pdf")
	link, _, err := s.UploadURL(ctx, "go", u)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		link string
		typ  string
		body []byte
		want int
	}{
		{"a body over the declared size", link, u.Type, append(bytes.Clone(pdf), 'x'), http.StatusRequestEntityTooLarge},
		{"another Content-Type", link, "text/plain", pdf, http.StatusBadRequest},
		{"another object in the link", strings.Replace(link, "uploads%2Fgo", "uploads%2Fpy", 1), u.Type, pdf, http.StatusForbidden},
		{"a link without a signature", strings.Split(link, "&signature=")[0], u.Type, pdf, http.StatusForbidden},
		{"a link of another server's key", func() string {
			other := fileblob.NewURLSignerHMAC(&url.URL{Scheme: "http", Host: strings.TrimPrefix(srv.URL, "http://"), Path: "/signed"}, []byte("another-key-of-at-least-32-bytes!!"))
			l, _ := other.URLFromKey(ctx, modulefiles.UploadKey("go", "f-1", u.Size), &driver.SignedURLOptions{Method: http.MethodPut, Expiry: time.Minute, ContentType: u.Type})
			return l.String()
		}(), u.Type, pdf, http.StatusForbidden},
	} {
		if got := put(t, c.link, c.typ, c.body); got != c.want {
			t.Errorf("PUT %s: %d, want %d", c.name, got, c.want)
		}
	}
	if ok, _ := b.Exists(ctx, modulefiles.UploadKey("go", "f-1", u.Size)); ok {
		t.Fatal("a refused PUT left an upload behind")
	}
	if code := put(t, link, u.Type, pdf); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	if _, err := s.Ingest(ctx, "go", u); err != nil {
		t.Fatal(err)
	}
	download, err := s.DownloadURL(ctx, "go", "f-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("serves a download with ranges", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, download, nil)
		req.Header.Set("Range", "bytes=0-7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(body) != "%PDF-1.7" || resp.Header.Get("Content-Type") != "application/pdf" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET bytes 0-7: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("a download link writes nothing, and an upload link reads nothing", func(t *testing.T) {
		if code := put(t, strings.Replace(download, "method=GET", "method=PUT", 1), u.Type, []byte("%PDF-evil")); code != http.StatusForbidden {
			t.Errorf("PUT with the download link's method changed: %d, want 403", code)
		}
		if code := put(t, download, u.Type, []byte("%PDF-evil")); code != http.StatusForbidden {
			t.Errorf("PUT to a download link: %d, want 403", code)
		}
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET of an upload link: %d, want 403", resp.StatusCode)
		}
		copied, _ := b.ReadAll(ctx, modulefiles.FileKey("go", "f-1"))
		if !bytes.Equal(copied, pdf) {
			t.Error("the file changed")
		}
	})
}
