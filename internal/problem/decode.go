package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DecodeJSON reads a JSON body into v, refusing other media types, unknown fields (no mass
// assignment), trailing data and bodies over maxBytes, with a problem that names the field at
// fault.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return New(http.StatusUnsupportedMediaType, "", "the request body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if me := new(http.MaxBytesError); errors.As(err, &me) {
			return err
		}
		return New(http.StatusBadRequest, "", "the request body must hold one JSON object")
	}
	return nil
}

// bodyError explains a JSON decoding failure, naming the field when there is one.
func bodyError(err error) error {
	var (
		me *http.MaxBytesError
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &me):
		return err
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return New(http.StatusBadRequest, "", "the request body is not valid JSON")
	case errors.Is(err, io.EOF):
		return New(http.StatusBadRequest, "", "the request body is empty")
	case errors.As(err, &te):
		return New(http.StatusBadRequest, te.Field, fmt.Sprintf("must be a JSON %s", te.Type.Kind()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return New(http.StatusBadRequest, field, "unknown field")
	default:
		return New(http.StatusBadRequest, "", "the request body is not valid JSON")
	}
}
