package problem

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// DecodeJSON reads a JSON body into v, refusing other media types, unknown fields (no mass
// assignment), keys given twice or in another letter case than v's fields (encoding/json
// would take the last one, and match case-insensitively), trailing data and bodies over
// maxBytes, with a problem that names the field at fault.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return New(http.StatusUnsupportedMediaType, "", "the request body must be application/json")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if me := new(http.MaxBytesError); errors.As(err, &me) {
			return err
		}
		return New(http.StatusBadRequest, "", "the request body could not be read")
	}
	if err := exactKeys(raw, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return New(http.StatusBadRequest, "", "the request body must hold one JSON object")
	}
	return nil
}

// exactKeys refuses a key of the body's top-level object that is given twice, or that matches
// one of v's JSON field names only when letter case is ignored. Anything that is not an object
// of keys is left to the decoder to refuse.
func exactKeys(raw []byte, v any) error {
	names := fieldNames(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return nil
		}
		if seen[key] {
			return New(http.StatusBadRequest, key, "is given twice")
		}
		seen[key] = true
		if !names[key] {
			for name := range names {
				if strings.EqualFold(name, key) {
					return New(http.StatusBadRequest, key, fmt.Sprintf("unknown field; field names are case-sensitive: %q", name))
				}
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// fieldNames returns the JSON names of the fields of the struct t points to.
func fieldNames(t reflect.Type) map[string]bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	if t == nil || t.Kind() != reflect.Struct {
		return names
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// NoBody refuses a body on a route that takes none: a client that sends one means something
// the route would silently ignore.
func NoBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
		return New(http.StatusBadRequest, "", "this route takes no request body")
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
