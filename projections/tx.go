package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edutrack/edutrack/readstore"
)

// Tx is the documents one batch of events touches. A projector reads and writes documents
// through it; the runner writes them all in one commit at the end of the batch.
//
// Writes are guarded by position: a document that already reflects the event being applied (its
// stored position is that event's or later, as after a crash between a commit and its
// checkpoint) ignores the write, so re-applying an event changes nothing.
type Tx struct {
	store readstore.Store
	docs  map[docKey]*txDoc
	order []docKey // first-touched order, so commits are deterministic
	pos   uint64   // position of the event being applied
}

type docKey struct{ coll, id string }

type txDoc struct {
	stored uint64 // position in the store when loaded; 0 if it did not exist
	pos    uint64
	body   json.RawMessage // nil if it does not exist
	dirty  bool
}

func newTx(store readstore.Store) *Tx {
	return &Tx{store: store, docs: make(map[docKey]*txDoc)}
}

func (tx *Tx) load(ctx context.Context, k docKey) (*txDoc, error) {
	if d, ok := tx.docs[k]; ok {
		return d, nil
	}
	d := &txDoc{}
	doc, err := tx.store.Get(ctx, k.coll, k.id)
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
		if _, ok := tx.docs[docKey{coll, id}]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	docs, err := tx.store.GetMany(ctx, coll, missing)
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

// Get decodes document coll/id into v and reports whether it exists.
func (tx *Tx) Get(ctx context.Context, coll, id string, v any) (bool, error) {
	d, err := tx.load(ctx, docKey{coll, id})
	if err != nil {
		return false, err
	}
	if d.body == nil {
		return false, nil
	}
	if err := json.Unmarshal(d.body, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return true, nil
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
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", coll, id, err)
	}
	d.body, d.pos, d.dirty = body, tx.pos, true
	return nil
}

// IDsWhere returns the ids of coll's documents whose field equals value, as of the event being
// applied: the committed ones and those this batch wrote.
func (tx *Tx) IDsWhere(ctx context.Context, coll, field string, value any) ([]string, error) {
	docs, err := tx.store.Find(ctx, readstore.Query{Coll: coll, Eq: []readstore.Field{{Name: field, Value: value}}})
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
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(d.body, &fields); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", coll, k.id, err)
		}
		if string(fields[field]) == string(want) {
			ids = append(ids, k.id)
		}
	}
	return ids, nil
}

// writes returns the documents the batch changed.
func (tx *Tx) writes() []readstore.Write {
	var out []readstore.Write
	for _, k := range tx.order {
		if d := tx.docs[k]; d.dirty {
			out = append(out, readstore.Write{Coll: k.coll, Doc: readstore.Doc{ID: k.id, Position: d.pos, Body: d.body}})
		}
	}
	return out
}
