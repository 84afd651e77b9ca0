// Package compress gzips the answers of clients that accept it. A gzipped answer carries a
// strong ETag of its own ("7-gzip" beside "7"), as RFC 9110 asks of a different representation,
// and a conditional request with either tag is answered 304 with the tag the client holds.
package compress

import (
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// suffix marks the ETag of a gzipped answer.
const suffix = "-gzip"

// Middleware gzips JSON answers of at least minSize bytes for clients that accept gzip. With
// minSize 0 every JSON answer to such a client is gzipped, so a 304 knows the tag it must carry
// (the one the 200 would have) from the request alone; with a larger one, a 304 carries the gzip
// tag only when the client sent it.
func Middleware(minSize int) (func(http.Handler) http.Handler, error) {
	wrap, err := gzhttp.NewWrapper(gzhttp.ContentTypes([]string{"application/json", "application/problem+json"}),
		gzhttp.SuffixETag(suffix), gzhttp.MinSize(minSize))
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		gz := wrap(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			match := r.Header.Get("If-None-Match")
			if match == "" || !acceptsGzip(r) {
				gz.ServeHTTP(w, r)
				return
			}
			// The handlers know their own tags only: compare with those, and give a 304 the tag
			// of the representation this client gets.
			r.Header.Set("If-None-Match", strings.ReplaceAll(match, suffix+`"`, `"`))
			gz.ServeHTTP(&notModified{ResponseWriter: w, sent: match, always: minSize == 0}, r)
		})
	}, nil
}

// notModified gives a 304 the gzip variant of its ETag: always, when every answer to this client
// is gzipped, else when that is the tag the client sent.
type notModified struct {
	http.ResponseWriter
	sent   string
	always bool
}

func (n *notModified) WriteHeader(status int) {
	if status == http.StatusNotModified {
		if tag := n.Header().Get("ETag"); strings.HasSuffix(tag, `"`) {
			if gz := tag[:len(tag)-1] + suffix + `"`; n.always || strings.Contains(n.sent, gz) {
				n.Header().Set("ETag", gz)
			}
		}
	}
	n.ResponseWriter.WriteHeader(status)
}

// acceptsGzip tells whether gzhttp gzips the answer to r: it takes an explicit gzip with a
// q-value above 0 (not *), in the first Accept-Encoding header, and never for HEAD.
func acceptsGzip(r *http.Request) bool {
	if r.Method == http.MethodHead {
		return false
	}
	for _, coding := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(coding, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		return !found || strings.Trim(q, "0.") != "" // q=0, q=0.0, q=0.000 refuse
	}
	return false
}
