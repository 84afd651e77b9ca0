package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Tx is the documents one batch of events touches. A projector reads and writes documents
// through it; the runner writes them all in one commit at the end of the batch.
//
// A document read through Get shares its slices and maps with the batch's live copy, so a
// projector changes what it read only to Put it; decoding once per batch and encoding once at the
// commit is what keeps a rebuild fast.
//
// Writes are guarded by position: a document that already reflects the event being applied (its
// stored position is that event's or later, as after a crash between a commit and its
// checkpoint) ignores the write, so re-applying an event changes nothing.
type Tx struct {
	store readstore.Store
	names map[string]string // collection names as projectors know them -> this generation's
	hot   *docCache         // documents decoded by earlier batches, if any
	docs  map[docKey]*txDoc
	order []docKey // first-touched order, so commits are deterministic
	pos   uint64   // position of the event being applied
}

type docKey struct{ coll, id string }

type txDoc struct {
	stored uint64          // position in the store when loaded; 0 if it did not exist
	body   json.RawMessage // as stored; nil if it did not exist
	val    any             // the live value, a pointer, once decoded or put
	pos    uint64
	dirty  bool
}

func newTx(store readstore.Store, names map[string]string, hot *docCache) *Tx {
	return &Tx{store: store, names: names, hot: hot, docs: make(map[docKey]*txDoc)}
}

// coll is the stored name of a collection in the generation being built.
func (tx *Tx) coll(c string) string {
	if n, ok := tx.names[c]; ok {
		return n
	}
	return c
}

// fromHot starts a document from the projection's own cache of committed documents.
func (tx *Tx) fromHot(k docKey) (*txDoc, bool) {
	if tx.hot == nil {
		return nil, false
	}
	h, ok := tx.hot.get(k)
	if !ok {
		return nil, false
	}
	d := &txDoc{stored: h.pos, pos: h.pos, val: h.val}
	tx.docs[k] = d
	tx.order = append(tx.order, k)
	return d, true
}

func (tx *Tx) load(ctx context.Context, k docKey) (*txDoc, error) {
	if d, ok := tx.docs[k]; ok {
		return d, nil
	}
	if d, ok := tx.fromHot(k); ok {
		return d, nil
	}
	d := &txDoc{}
	doc, err := tx.store.Get(ctx, tx.coll(k.coll), k.id)
	switch {
	case errors.Is(err, readstore.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		d.stored, d.pos, d.body = doc.Position, doc.Position, doc.Body
	}
	tx.docs[k] = d
	tx.order = append(tx.order, k)
	return d, nil
}

// Prefetch loads the documents of coll with these ids in one round trip.
func (tx *Tx) Prefetch(ctx context.Context, coll string, ids []string) error {
	var missing []string
	for _, id := range ids {
		k := docKey{coll, id}
		if _, ok := tx.docs[k]; ok {
			continue
		}
		if _, ok := tx.fromHot(k); !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	docs, err := tx.store.GetMany(ctx, tx.coll(coll), missing)
	if err != nil {
		return err
	}
	found := make(map[string]readstore.Doc, len(docs))
	for _, d := range docs {
		found[d.ID] = d
	}
	for _, id := range missing {
		k := docKey{coll, id}
		if _, ok := tx.docs[k]; ok {
			continue
		}
		d := &txDoc{}
		if doc, ok := found[id]; ok {
			d.stored, d.pos, d.body = doc.Position, doc.Position, doc.Body
		}
		tx.docs[k] = d
		tx.order = append(tx.order, k)
	}
	return nil
}

// Get sets *v to document coll/id and reports whether it exists. v must be a pointer.
func (tx *Tx) Get(ctx context.Context, coll, id string, v any) (bool, error) {
	d, err := tx.load(ctx, docKey{coll, id})
	if err != nil {
		return false, err
	}
	if d.stored >= tx.pos {
		// The stored document already reflects this event, and Put will ignore it: hand out a
		// private copy, so whatever the projector does to it cannot leak into the batch.
		if d.body == nil && d.val != nil { // from the hot cache: make the private copy by value
			body, err := json.Marshal(d.val)
			if err != nil {
				return false, fmt.Errorf("encode %s/%s: %w", coll, id, err)
			}
			d.body = body
		}
		if d.body == nil {
			return false, nil
		}
		return true, decodeInto(coll, id, d.body, v)
	}
	if d.val == nil {
		if d.body == nil {
			return false, nil
		}
		if err := decodeInto(coll, id, d.body, v); err != nil {
			return false, err
		}
		d.val = clonePtr(v)
		return true, nil
	}
	dst, src := reflect.ValueOf(v).Elem(), reflect.ValueOf(d.val).Elem()
	if dst.Type() != src.Type() {
		return false, fmt.Errorf("get %s/%s as %s, it was read as %s", coll, id, dst.Type(), src.Type())
	}
	dst.Set(src)
	return true, nil
}

func decodeInto(coll, id string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return nil
}

// clonePtr returns a new pointer to a shallow copy of *p.
func clonePtr(p any) any {
	src := reflect.ValueOf(p).Elem()
	c := reflect.New(src.Type())
	c.Elem().Set(src)
	return c.Interface()
}

// Put sets document coll/id to v, as of the event being applied. It must follow a Get of the
// same document in this batch.
func (tx *Tx) Put(coll, id string, v any) error {
	d, ok := tx.docs[docKey{coll, id}]
	if !ok {
		return fmt.Errorf("put %s/%s without reading it first", coll, id)
	}
	if d.stored >= tx.pos {
		return nil // the stored document already reflects this event
	}
	p := reflect.New(reflect.TypeOf(v))
	p.Elem().Set(reflect.ValueOf(v))
	d.val, d.pos, d.dirty = p.Interface(), tx.pos, true
	return nil
}

// IDsWhere returns the ids of coll's documents whose field equals value, as of the event being
// applied: the committed ones and those this batch wrote.
func (tx *Tx) IDsWhere(ctx context.Context, coll, field string, value any) ([]string, error) {
	docs, err := tx.store.Find(ctx, readstore.Query{Coll: tx.coll(coll), Eq: []readstore.Field{{Name: field, Value: value}}})
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(docs))
	var ids []string
	for _, d := range docs {
		if td, ok := tx.docs[docKey{coll, d.ID}]; ok && td.dirty {
			continue // judged below on its newer body
		}
		seen[d.ID] = true
		ids = append(ids, d.ID)
	}
	want, _ := json.Marshal(value)
	for _, k := range tx.order {
		d := tx.docs[k]
		if k.coll != coll || !d.dirty || seen[k.id] {
			continue
		}
		body, err := json.Marshal(d.val)
		if err != nil {
			return nil, fmt.Errorf("encode %s/%s: %w", coll, k.id, err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", coll, k.id, err)
		}
		if string(fields[field]) == string(want) {
			ids = append(ids, k.id)
		}
	}
	return ids, nil
}

// writes encodes the documents the batch changed.
func (tx *Tx) writes() ([]readstore.Write, error) {
	var out []readstore.Write
	for _, k := range tx.order {
		d := tx.docs[k]
		if !d.dirty {
			continue
		}
		body, err := json.Marshal(d.val)
		if err != nil {
			return nil, fmt.Errorf("encode %s/%s: %w", k.coll, k.id, err)
		}
		out = append(out, readstore.Write{Coll: tx.coll(k.coll), Doc: readstore.Doc{ID: k.id, Position: d.pos, Body: body}})
	}
	return out, nil
}

// docCache keeps the documents a projection committed, decoded, so the next batches neither read
// nor decode them again. Only that projection writes its documents, so they stay current; after
// any failed batch the runner clears it, since a failed batch may have changed values in place.
type docCache struct {
	max  int
	docs map[docKey]hotDoc
}

type hotDoc struct {
	pos uint64
	val any
}

func newDocCache(max int) *docCache { return &docCache{max: max, docs: make(map[docKey]hotDoc)} }

func (c *docCache) get(k docKey) (hotDoc, bool) {
	h, ok := c.docs[k]
	return h, ok
}

func (c *docCache) put(k docKey, h hotDoc) {
	if _, ok := c.docs[k]; !ok && len(c.docs) >= c.max {
		for old := range c.docs { // map order is random: a cheap random eviction
			delete(c.docs, old)
			break
		}
	}
	c.docs[k] = h
}

func (c *docCache) clear() { clear(c.docs) }

func (c *docCache) each(fn func(k docKey, h hotDoc)) {
	for k, h := range c.docs {
		fn(k, h)
	}
}

// remember puts the batch's committed documents in the cache.
func (tx *Tx) remember() {
	if tx.hot == nil {
		return
	}
	for _, k := range tx.order {
		if d := tx.docs[k]; d.dirty {
			tx.hot.put(k, hotDoc{pos: d.pos, val: d.val})
		}
	}
}
