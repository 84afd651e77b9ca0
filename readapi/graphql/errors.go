package graphql

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	gqlgen "github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/edutrack/edutrack/internal/problem"
)

// The codes of extensions.code, beside gqlgen's own GRAPHQL_PARSE_FAILED and
// GRAPHQL_VALIDATION_FAILED: one per status a REST route answers, so a client reads the same
// outcome from either.
const (
	CodeBadInput      = "BAD_USER_INPUT"         // 400
	CodeForbidden     = "FORBIDDEN"              // 403
	CodeNotFound      = "NOT_FOUND"              // 404
	CodeConflict      = "CONFLICT"               // 409
	CodeTooLarge      = "PAYLOAD_TOO_LARGE"      // 413
	CodeUnsupported   = "UNSUPPORTED_MEDIA_TYPE" // 415
	CodeUnprocessable = "UNPROCESSABLE"          // 422: well formed, but not what it must be
	CodeUnavailable   = "UNAVAILABLE"            // 503
	CodeInternal      = "INTERNAL"               // 500
	CodeLimit         = "LIMIT_EXCEEDED"         // a query past one of the endpoint's limits
	CodeBatch         = "BATCH_REFUSED"          // more than one operation in one request
	CodeAuth          = "UNAUTHENTICATED"        // 401
)

func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadInput
	case http.StatusUnauthorized:
		return CodeAuth
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupported
	case http.StatusUnprocessableEntity:
		return CodeUnprocessable
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	}
	return CodeInternal
}

// present turns an error into what the client reads: the REST layer's problem, as a message
// and extensions.code (and field, naming the input at fault), and never an internal error's
// text, which goes to the log.
func (s *Server) present(ctx context.Context, err error) *gqlerror.Error {
	gqlErr, ok := errors.AsType[*gqlerror.Error](err)
	if ok && gqlErr.Err == nil {
		// gqlgen's own (parsing, validation) and the limits': already for the client.
		if gqlErr.Extensions == nil || gqlErr.Extensions["code"] == nil {
			gqlErr.Extensions = map[string]any{"code": CodeBadInput}
		}
		return gqlErr
	}
	out := &gqlerror.Error{Path: gqlgen.GetPath(ctx)}
	if ok {
		out.Path, out.Locations, err = gqlErr.Path, gqlErr.Locations, gqlErr.Err
	}
	d := problem.From(err)
	out.Message = d.Detail
	out.Extensions = map[string]any{"code": codeOf(d.Status)}
	if d.Field != "" {
		out.Extensions["field"] = d.Field
	}
	if d.Status >= 500 && d.Status != http.StatusServiceUnavailable {
		s.log.ErrorContext(ctx, "graphql field failed", "path", out.Path.String(), "err", err)
		out.Message = "internal error"
	}
	if out.Message == "" {
		out.Message = d.Title
	}
	return out
}

// recover answers a resolver's panic as an internal error, logged with what panicked.
func (s *Server) recover(ctx context.Context, v any) error {
	s.log.ErrorContext(ctx, "graphql resolver panicked", "panic", fmt.Sprint(v))
	return errors.New("resolver panicked")
}
