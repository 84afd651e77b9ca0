package readapi

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/go-chi/chi/v5"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
)

// mediaKey is the shape of every key GET /media serves: a course image's variant, the course's
// id then the SHA-256 of the variant's bytes. Nothing else of the bucket (originals,
// certificates, module files) matches, so none of it is reachable through this route.
var mediaKey = regexp.MustCompile(`^[a-z0-9-]{1,64}\.([0-9a-f]{64})\.(webp|jpg)$`)

var mediaTypes = map[string]string{"webp": "image/webp", "jpg": "image/jpeg"}

// MediaRoutes mounts GET /media/{key} on r: the stored variants of course images, public, for
// browsers and CDNs. Mount it without compression: the images are compressed already, and
// Range requests count the bytes as stored.
func (a *API) MediaRoutes(r chi.Router) {
	r.Get("/media/{key}", a.media)
}

// MediaURLs answers body with its media URLs pointing where this process's read models say
// they are served from (Options.MediaBaseURL), as every route answers them.
func (a *API) MediaURLs(body []byte) []byte { return documents.MediaURLs(body, a.opts.MediaBaseURL) }

// media serves a variant through http.ServeContent, which answers Range and conditional
// requests. A key names its content, so the answer never changes: a year of caching, immutable,
// and the content's digest as the strong ETag.
func (a *API) media(w http.ResponseWriter, r *http.Request) {
	key := chi.URLParam(r, "key")
	m := mediaKey.FindStringSubmatch(key)
	if m == nil {
		problem.Write(w, r, a.log, problem.New(http.StatusNotFound, "", "media not found"))
		return
	}
	if a.opts.Blobs == nil {
		problem.Write(w, r, a.log, problem.New(http.StatusServiceUnavailable, "", "this process has no blob storage"))
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", `"`+m[1]+`"`)
	h.Set("Content-Type", mediaTypes[m[2]])
	h.Set("X-Content-Type-Options", "nosniff")
	now := time.Now()
	if e, ok := a.mediaBytes.get(key, now); ok {
		http.ServeContent(w, r, "", e.modTime, bytes.NewReader(e.data))
		return
	}
	blob, err := a.opts.Blobs.NewReader(r.Context(), documents.MediaBlobKey(key), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		clearMediaHeaders(h)
		problem.Write(w, r, a.log, problem.New(http.StatusNotFound, "", "media not found"))
		return
	}
	if err != nil {
		clearMediaHeaders(h)
		problem.Write(w, r, a.log, err)
		return
	}
	defer blob.Close()
	if blob.Size() <= mediaCacheItem {
		data := make([]byte, blob.Size())
		if _, err := io.ReadFull(blob, data); err != nil {
			clearMediaHeaders(h)
			problem.Write(w, r, a.log, err)
			return
		}
		a.mediaBytes.put(key, data, blob.ModTime(), now)
		http.ServeContent(w, r, "", blob.ModTime(), bytes.NewReader(data))
		return
	}
	http.ServeContent(w, r, "", blob.ModTime(), blob)
}

// clearMediaHeaders takes back the headers of an image before a problem is answered instead.
func clearMediaHeaders(h http.Header) {
	for _, k := range []string{"Cache-Control", "ETag", "Content-Type"} {
		h.Del(k)
	}
}
