package mongostore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Field names the adapter adds to every stored document; a body may not use them.
const (
	idField  = "_id"
	posField = "_pos"
)

// bodyToBSON turns a JSON object into a document whose fields keep their order. Integers become
// int64, not double, so that equality and sorting on them behave as integers; other numbers
// become double (an integer beyond int64 too). A repeated key keeps its last value, as
// encoding/json does.
func bodyToBSON(body []byte) (bson.D, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("body is not a JSON object")
	}
	d, err := jsonObject(dec)
	if err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("body has data after its JSON object")
	}
	for _, e := range d {
		if e.Key == idField || e.Key == posField {
			return nil, fmt.Errorf("body field %s is reserved for the store", e.Key)
		}
	}
	return d, nil
}

// jsonObject reads the members of an object whose '{' has been read, and its '}'.
func jsonObject(dec *json.Decoder) (bson.D, error) {
	d := bson.D{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key %v is not a string", tok)
		}
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		d = setField(d, key, v)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return d, nil
}

func setField(d bson.D, key string, v any) bson.D {
	for i := range d {
		if d[i].Key == key {
			d[i].Value = v
			return d
		}
	}
	return append(d, bson.E{Key: key, Value: v})
}

func jsonValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return jsonObject(dec)
		case '[':
			a := bson.A{}
			for dec.More() {
				v, err := jsonValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return jsonNumber(t)
	case string, bool, nil:
		return t, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func jsonNumber(n json.Number) (any, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("number %s: %w", n, err)
	}
	if math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %s is out of range", n)
	}
	return f, nil
}

// docFromBSON splits a stored document into the port's Doc: _id and _pos out, the rest as the
// JSON body.
func docFromBSON(raw bson.Raw) (readstore.Doc, error) {
	elems, err := raw.Elements()
	if err != nil {
		return readstore.Doc{}, fmt.Errorf("read stored document: %w", err)
	}
	var d readstore.Doc
	buf := make([]byte, 0, len(raw))
	buf = append(buf, '{')
	n := 0
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		switch key {
		case idField:
			id, ok := v.StringValueOK()
			if !ok {
				return readstore.Doc{}, fmt.Errorf("stored document has a %s _id, want a string", v.Type)
			}
			d.ID = id
			continue
		case posField:
			pos, ok := v.AsInt64OK()
			if !ok || pos < 0 {
				return readstore.Doc{}, fmt.Errorf("stored document %q has _pos %s, want a non-negative integer", d.ID, v)
			}
			d.Position = uint64(pos)
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendJSONString(buf, key)
		buf = append(buf, ':')
		if buf, err = appendJSONValue(buf, v); err != nil {
			return readstore.Doc{}, fmt.Errorf("stored document %q field %s: %w", d.ID, key, err)
		}
	}
	d.Body = append(buf, '}')
	return d, nil
}

// appendJSONValue writes v as JSON. It covers what bodyToBSON stores, plus the types a person
// editing documents by hand is likely to leave (int32, dates, object ids).
func appendJSONValue(buf []byte, v bson.RawValue) ([]byte, error) {
	switch v.Type {
	case bson.TypeString:
		return appendJSONString(buf, v.StringValue()), nil
	case bson.TypeInt64:
		return strconv.AppendInt(buf, v.Int64(), 10), nil
	case bson.TypeInt32:
		return strconv.AppendInt(buf, int64(v.Int32()), 10), nil
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v has no JSON form", f)
		}
		b, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		return append(buf, b...), nil
	case bson.TypeBoolean:
		return strconv.AppendBool(buf, v.Boolean()), nil
	case bson.TypeNull, bson.TypeUndefined:
		return append(buf, "null"...), nil
	case bson.TypeEmbeddedDocument:
		elems, err := v.Document().Elements()
		if err != nil {
			return nil, err
		}
		buf = append(buf, '{')
		for i, e := range elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, e.Key())
			buf = append(buf, ':')
			if buf, err = appendJSONValue(buf, e.Value()); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, err
		}
		buf = append(buf, '[')
		for i, x := range vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendJSONValue(buf, x); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case bson.TypeDateTime:
		return appendJSONString(buf, v.Time().UTC().Format(time.RFC3339Nano)), nil
	case bson.TypeObjectID:
		return appendJSONString(buf, v.ObjectID().Hex()), nil
	}
	return nil, fmt.Errorf("BSON type %s has no JSON form here", v.Type)
}

// appendJSONString quotes s as JSON. Unlike encoding/json it leaves <, > and & alone: bodies
// are data, not HTML.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
