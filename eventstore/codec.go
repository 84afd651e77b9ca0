package eventstore

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/edutrack/edutrack/domain"
)

// Codec turns domain events into stored type names and JSON, and back. It knows exactly the
// event types it was built with, so a stored type nobody registered is an error, not a guess.
type Codec struct {
	types map[string]reflect.Type
}

// NewCodec registers the given events (zero values) by their EventType. Events must be value
// types, and two types may not share a name.
func NewCodec(events ...domain.Event) (*Codec, error) {
	c := &Codec{types: make(map[string]reflect.Type, len(events))}
	for _, e := range events {
		t := reflect.TypeOf(e)
		if t.Kind() == reflect.Pointer {
			return nil, fmt.Errorf("register %s: events are value types, got a pointer", t)
		}
		name := e.EventType()
		if prev, ok := c.types[name]; ok && prev != t {
			return nil, fmt.Errorf("register %s: type name %q is already used by %s", t, name, prev)
		}
		c.types[name] = t
	}
	return c, nil
}

// Encode returns e's stored type name and JSON data.
func (c *Codec) Encode(e domain.Event) (string, []byte, error) {
	name := e.EventType()
	if _, ok := c.types[name]; !ok {
		return "", nil, fmt.Errorf("encode event: type %q is not registered", name)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", name, err)
	}
	return name, data, nil
}

// Decode rebuilds the event stored as name with data.
func (c *Codec) Decode(name string, data []byte) (domain.Event, error) {
	t, ok := c.types[name]
	if !ok {
		return nil, fmt.Errorf("decode event: type %q is not registered", name)
	}
	p := reflect.New(t)
	if err := json.Unmarshal(data, p.Interface()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return p.Elem().Interface().(domain.Event), nil
}
