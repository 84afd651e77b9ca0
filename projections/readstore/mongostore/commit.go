package mongostore

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/edutrack/edutrack/projections/readstore"
)

// duplicateKey is MongoDB's error code for an insert whose _id exists.
const duplicateKey = 11000

// Commit writes each document unless the stored one is as new or newer, then the checkpoint.
// Without a transaction, the order is what keeps a crash safe: the checkpoint never runs ahead
// of the documents, and re-applying the events after it changes nothing.
func (s *Store) Commit(ctx context.Context, projection string, checkpoint uint64, writes []readstore.Write) error {
	if checkpoint > math.MaxInt64 {
		return fmt.Errorf("commit %s: checkpoint %d does not fit in a BSON int64", projection, checkpoint)
	}
	colls, byColl, err := latestWrites(writes)
	if err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	if err := s.checkFence(ctx); err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	for _, c := range colls {
		docs := byColl[c]
		for start := 0; start < len(docs); start += s.bulkChunk {
			if err := s.writeChunk(ctx, c, docs[start:min(start+s.bulkChunk, len(docs))]); err != nil {
				return fmt.Errorf("commit %s: %w", projection, err)
			}
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	filter := bson.D{{Key: idField, Value: projection}}
	set := bson.D{{Key: "position", Value: int64(checkpoint)}}
	if f, ok := readstore.FenceFrom(ctx); ok {
		// A checkpoint written under a newer token is never overwritten under an older one:
		// the filter misses, the upsert collides with the existing _id, and the write fails.
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "fence", Value: bson.D{{Key: "$lte", Value: int64(f.Token)}}}},
			bson.D{{Key: "fence", Value: bson.D{{Key: "$exists", Value: false}}}},
		}})
		set = append(set, bson.E{Key: "fence", Value: int64(f.Token)})
	}
	_, err = s.coll(checkpointsColl).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}}, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("commit %s: %w", projection, readstore.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("commit %s: store checkpoint %d: %w", projection, checkpoint, err)
	}
	return nil
}

// guarded is one document write, guarded by its position.
type guarded struct {
	id    string
	pos   int64
	model mongo.WriteModel
}

// latestWrites keeps, per collection and id, the write with the highest position (the later one
// of equals), grouped by collection in first-seen order.
func latestWrites(writes []readstore.Write) ([]string, map[string][]guarded, error) {
	type key struct{ coll, id string }
	latest := make(map[key]int, len(writes))
	var order []key
	for i, w := range writes {
		k := key{w.Coll, w.Doc.ID}
		j, seen := latest[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || w.Doc.Position >= writes[j].Doc.Position {
			latest[k] = i
		}
	}
	var colls []string
	byColl := map[string][]guarded{}
	for _, k := range order {
		w := writes[latest[k]]
		g, err := guardedReplace(w.Doc)
		if err != nil {
			return nil, nil, fmt.Errorf("document %s/%s: %w", w.Coll, w.Doc.ID, err)
		}
		if _, ok := byColl[k.coll]; !ok {
			colls = append(colls, k.coll)
		}
		byColl[k.coll] = append(byColl[k.coll], g)
	}
	return colls, byColl, nil
}

// guardedReplace replaces the stored document only if it is older. When it is not, the filter
// matches nothing and the upsert tries to insert a second document with the same _id, which
// fails with a duplicate key error: writeChunk reads that as "skip".
func guardedReplace(d readstore.Doc) (guarded, error) {
	if d.Position > math.MaxInt64 {
		return guarded{}, fmt.Errorf("position %d does not fit in a BSON int64", d.Position)
	}
	body, err := bodyToBSON(d.Body)
	if err != nil {
		return guarded{}, err
	}
	pos := int64(d.Position)
	doc := make(bson.D, 0, len(body)+2)
	doc = append(doc, bson.E{Key: idField, Value: d.ID}, bson.E{Key: posField, Value: pos})
	doc = append(doc, body...)
	m := mongo.NewReplaceOneModel().
		SetFilter(bson.D{{Key: idField, Value: d.ID}, {Key: posField, Value: bson.D{{Key: "$lt", Value: pos}}}}).
		SetReplacement(doc).
		SetUpsert(true)
	return guarded{id: d.ID, pos: pos, model: m}, nil
}

// writeChunk writes one bulk command's worth of documents, unordered. Duplicate keys are skips
// (see guardedReplace); any other write error fails. MongoDB runs every statement of an
// unordered command whatever fails, but FerretDB ignores "ordered" and stops at the first error,
// leaving the statements after it unrun. So after skips, the chunk's stored positions are read
// back, and the writes they do not cover yet go again: on MongoDB that read finds nothing left
// to do. The same read-back also repairs a race with another writer that inserted an older copy
// between our filter and our insert.
func (s *Store) writeChunk(ctx context.Context, coll string, chunk []guarded) error {
	pending := chunk
	// Every round but a race's drops at least the statement that failed.
	for range len(chunk) + 1 {
		err := s.bulkWrite(ctx, coll, pending)
		if err == nil {
			return nil
		}
		if !onlySkips(err) {
			return fmt.Errorf("write %d documents to %s: %w", len(pending), coll, err)
		}
		stored, err := s.storedPositions(ctx, coll, pending)
		if err != nil {
			return fmt.Errorf("read back positions in %s after skipped writes: %w", coll, err)
		}
		var next []guarded
		for _, g := range pending {
			if p, ok := stored[g.id]; !ok || p < g.pos {
				next = append(next, g)
			}
		}
		if len(next) == 0 {
			return nil
		}
		pending = next
	}
	return fmt.Errorf("write %d documents to %s: still refused as duplicates while stored older", len(pending), coll)
}

func (s *Store) bulkWrite(ctx context.Context, coll string, writes []guarded) error {
	models := make([]mongo.WriteModel, len(writes))
	for i, g := range writes {
		models[i] = g.model
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.coll(coll).BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	return err
}

func onlySkips(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != duplicateKey {
			return false
		}
	}
	return true
}

// storedPositions reads the stored positions of writes' ids from the primary: a secondary
// could lag behind the writes just refused and make them look undone.
func (s *Store) storedPositions(ctx context.Context, coll string, writes []guarded) (map[string]int64, error) {
	ids := make([]string, len(writes))
	for i, g := range writes {
		ids[i] = g.id
	}
	c := s.db.Collection(s.prefix+coll, options.Collection().
		SetReadPreference(readpref.Primary()).
		SetReadConcern(readconcern.Local()))
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := c.Find(ctx, bson.D{{Key: idField, Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: posField, Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	stored := make(map[string]int64, len(ids))
	for cur.Next(ctx) {
		var d struct {
			ID  string `bson:"_id"`
			Pos int64  `bson:"_pos"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		stored[d.ID] = d.Pos
	}
	return stored, cur.Err()
}

// Checkpoint returns the position projection has committed, or 0.
func (s *Store) Checkpoint(ctx context.Context, projection string) (uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var cp struct {
		Position int64 `bson:"position"`
	}
	err := s.coll(checkpointsColl).FindOne(ctx, bson.D{{Key: idField, Value: projection}}).Decode(&cp)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint of %s: %w", projection, err)
	}
	return uint64(cp.Position), nil
}
