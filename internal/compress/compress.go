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

// Middleware gzips JSON answers of at least minSize bytes for clients that accept gzip; smaller
// ones gain too little to pay for the compression.
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
			if !strings.Contains(match, suffix+`"`) {
				gz.ServeHTTP(w, r)
				return
			}
			// The handlers know their own tags only: compare with those, and answer a 304 with
			// the gzip tag the client sent.
			r.Header.Set("If-None-Match", strings.ReplaceAll(match, suffix+`"`, `"`))
			gz.ServeHTTP(&notModified{ResponseWriter: w, sent: match}, r)
		})
	}, nil
}

// notModified gives a 304 the gzip variant of its ETag when that is the tag the client sent.
type notModified struct {
	http.ResponseWriter
	sent string
}

func (n *notModified) WriteHeader(status int) {
	if status == http.StatusNotModified {
		if tag := n.Header().Get("ETag"); strings.HasSuffix(tag, `"`) {
			if gz := tag[:len(tag)-1] + suffix + `"`; strings.Contains(n.sent, gz) {
				n.Header().Set("ETag", gz)
			}
		}
	}
	n.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (n *notModified) Unwrap() http.ResponseWriter { return n.ResponseWriter }
