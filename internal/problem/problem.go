// Package problem turns errors into RFC 9457 problem details (application/problem+json), the one
// error format of every EduTrack HTTP API.
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/edutrack/edutrack/domain"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Details is a problem document. Field names the input at fault, when there is one.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Field    string `json:"field,omitempty"`
}

// Error is an error the transport itself raises, with the status it answers.
type Error struct {
	Status  int
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// New returns a transport error.
func New(status int, field, message string) *Error {
	return &Error{Status: status, Field: field, Message: message}
}

// statusOf maps a domain error kind to its HTTP status; this is the only place that does.
func statusOf(k domain.Kind) int {
	switch k {
	case domain.Invalid:
		return http.StatusBadRequest
	case domain.NotFound:
		return http.StatusNotFound
	case domain.Conflict:
		return http.StatusConflict
	case domain.Forbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// From describes err as a problem. Errors it does not know are internal: their text stays in
// the log and the client learns only that the server failed.
func From(err error) Details {
	var (
		te *Error
		de *domain.Error
		me *http.MaxBytesError
	)
	d := Details{Type: "about:blank"}
	switch {
	case errors.As(err, &te):
		d.Status, d.Field, d.Detail = te.Status, te.Field, te.Message
	case errors.As(err, &de):
		d.Status, d.Field, d.Detail = statusOf(de.Kind), de.Field, de.Message
	case errors.As(err, &me):
		d.Status, d.Detail = http.StatusRequestEntityTooLarge, "the request body is larger than the limit"
	case errors.Is(err, context.DeadlineExceeded):
		// The server's own request timeout ran out (see the serve command's request timeout).
		d.Status, d.Detail = http.StatusServiceUnavailable, "the request took longer than the server allows; retry it"
	default:
		d.Status = http.StatusInternalServerError
	}
	d.Title = http.StatusText(d.Status)
	return d
}

// Write answers r with err as a problem document, logging what is internal.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	d := From(err)
	d.Instance = r.URL.Path
	var te *Error
	switch {
	case errors.As(err, &te): // a transport's own 503 is an answer, not a failure
	case errors.Is(err, context.DeadlineExceeded):
		// A slow request is a sign of load, not of a fault in this one.
		log.WarnContext(r.Context(), "request timed out", "method", r.Method, "path", r.URL.Path, "err", err)
	case d.Status >= 500:
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(d.Status)
	json.NewEncoder(w).Encode(d)
}
