// Package mongostore keeps the read models in MongoDB (official driver v2), for deployments that
// outgrow the embedded store: one Mongo collection per read-model collection, position-guarded
// upserts, and no reliance on transactions, $text or change streams.
package mongostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Defaults for the zero Options. They suit a production replica set: see Options.
const (
	DefaultDatabase               = "edutrack"
	DefaultReadPreference         = "primary"
	DefaultMaxPoolSize            = 100
	DefaultMinPoolSize            = 0
	DefaultConnectTimeout         = 5 * time.Second
	DefaultServerSelectionTimeout = 5 * time.Second
	DefaultOpTimeout              = 5 * time.Second
	DefaultBulkChunk              = 500
)

// Names of the store's own collections (after CollectionPrefix).
const (
	checkpointsColl = "_checkpoints"
	deadLettersColl = "_dead_letters"
	leasesColl      = "_leases"
)

// duplicateKey is MongoDB's error code for an insert whose _id exists.
const duplicateKey = 11000

// Options tunes the store; a zero field takes its default. For the client settings (read
// preference, pool sizes, timeouts), an option set in the URI beats the default, and a non-zero
// field beats the URI.
//
// What is fixed, not optional: writes use write concern majority, journaled, so a checkpoint is
// never acknowledged for writes a failover could roll back; reads use read concern majority, so
// the read API never shows a document that a failover could take back. Both hold for FerretDB
// too, which accepts and ignores them. Retryable writes and reads stay on (the driver's default):
// every write is a position-guarded upsert, so a retry changes nothing.
type Options struct {
	// Database holds every collection; default "edutrack".
	Database string
	// CollectionPrefix goes before every collection name, the store's own _checkpoints and
	// _dead_letters included, so that several stores can share a database; default "".
	CollectionPrefix string
	// ReadPreference is "primary" (the default: reads see every acknowledged write, which the
	// read API's minPosition waits rely on), "primaryPreferred", "secondaryPreferred" or
	// "nearest". A secondary may lag behind the checkpoint the read API waited for, so choose one
	// only where slightly stale pages are acceptable.
	ReadPreference string
	// MaxPoolSize caps the connections per server; default 100, the driver's own default, which
	// covers the read API's concurrency with room for the projector's bulk writes.
	MaxPoolSize uint64
	// MinPoolSize keeps connections open while idle; default 0.
	MinPoolSize uint64
	// ConnectTimeout bounds opening one connection; default 5s (the driver waits 30s).
	ConnectTimeout time.Duration
	// ServerSelectionTimeout bounds waiting for a suitable server, as during an election;
	// default 5s (the driver waits 30s), so that a request fails while its client still waits.
	ServerSelectionTimeout time.Duration
	// OpTimeout bounds each operation (one bulk write chunk, one query with its cursor) through
	// its context; default 5s.
	OpTimeout time.Duration
	// BulkChunk caps the statements in one bulk write command; default 500. FerretDB hangs on
	// an update command of 50 statements or more, so tests against it set it lower.
	BulkChunk int
}

// Store is a readstore.Store on MongoDB.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	prefix    string
	opTimeout time.Duration
	bulkChunk int
}

var _ readstore.Store = (*Store)(nil)

// Open connects to the MongoDB at uri and checks that a server answers. It creates no index:
// call EnsureIndexes.
func Open(ctx context.Context, uri string, opts Options) (*Store, error) {
	co, err := clientOptions(uri, opts)
	if err != nil {
		return nil, err
	}
	return open(ctx, co, opts)
}

func open(ctx context.Context, co *options.ClientOptions, opts Options) (*Store, error) {
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb: %w", err)
	}
	s := &Store{
		client:    client,
		db:        client.Database(cmp.Or(opts.Database, DefaultDatabase)),
		prefix:    opts.CollectionPrefix,
		opTimeout: cmp.Or(opts.OpTimeout, DefaultOpTimeout),
		bulkChunk: cmp.Or(opts.BulkChunk, DefaultBulkChunk),
	}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	return s, nil
}

func clientOptions(uri string, opts Options) (*options.ClientOptions, error) {
	if opts.BulkChunk < 0 || opts.OpTimeout < 0 || opts.ConnectTimeout < 0 || opts.ServerSelectionTimeout < 0 {
		return nil, errors.New("mongo options: sizes and timeouts must not be negative")
	}
	if opts.MaxPoolSize != 0 && opts.MinPoolSize > opts.MaxPoolSize {
		return nil, fmt.Errorf("mongo options: min pool size %d is above max pool size %d", opts.MinPoolSize, opts.MaxPoolSize)
	}
	// Defaults first, then the URI, then what opts sets: the last one wins.
	co := options.Client().
		SetAppName("edutrack").
		SetWriteConcern(&writeconcern.WriteConcern{W: writeconcern.WCMajority, Journal: new(true)}).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary()).
		SetMaxPoolSize(DefaultMaxPoolSize).
		SetMinPoolSize(DefaultMinPoolSize).
		SetConnectTimeout(DefaultConnectTimeout).
		SetServerSelectionTimeout(DefaultServerSelectionTimeout).
		ApplyURI(uri)
	if opts.ReadPreference != "" {
		rp, err := readPreference(opts.ReadPreference)
		if err != nil {
			return nil, err
		}
		co.SetReadPreference(rp)
	}
	if opts.MaxPoolSize != 0 {
		co.SetMaxPoolSize(opts.MaxPoolSize)
	}
	if opts.MinPoolSize != 0 {
		co.SetMinPoolSize(opts.MinPoolSize)
	}
	if opts.ConnectTimeout != 0 {
		co.SetConnectTimeout(opts.ConnectTimeout)
	}
	if opts.ServerSelectionTimeout != 0 {
		co.SetServerSelectionTimeout(opts.ServerSelectionTimeout)
	}
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("mongo options: %w", err)
	}
	return co, nil
}

func readPreference(name string) (*readpref.ReadPref, error) {
	switch name {
	case "primary":
		return readpref.Primary(), nil
	case "primaryPreferred":
		return readpref.PrimaryPreferred(), nil
	case "secondaryPreferred":
		return readpref.SecondaryPreferred(), nil
	case "nearest":
		return readpref.Nearest(), nil
	}
	return nil, fmt.Errorf("mongo options: read preference %q is not primary, primaryPreferred, secondaryPreferred or nearest", name)
}

// Ping checks that a server matching the read preference answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}

// Close disconnects, waiting up to the operation timeout for operations in flight.
func (s *Store) Close() error {
	ctx, cancel := s.op(context.Background())
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from mongodb: %w", err)
	}
	return nil
}

func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

func (s *Store) coll(name string) *mongo.Collection {
	return s.db.Collection(s.prefix + name)
}

// EnsureIndexes creates each index with MongoDB's own default name (field_1_field_1), so that
// asking again, or for an index someone created by hand with the same fields, is a no-op.
func (s *Store) EnsureIndexes(ctx context.Context, indexes []readstore.Index) error {
	// Operators list a projection's dead letters by position.
	indexes = append(slices.Clone(indexes), readstore.Index{Coll: deadLettersColl, Fields: []string{"projection", "position"}})
	var colls []string
	byColl := map[string][]mongo.IndexModel{}
	for _, ix := range indexes {
		if len(ix.Fields) == 0 {
			return fmt.Errorf("index on %s has no fields", ix.Coll)
		}
		keys := bson.D{}
		for _, f := range ix.Fields {
			keys = append(keys, bson.E{Key: f, Value: 1})
		}
		name := strings.Join(ix.Fields, "_1_") + "_1"
		if _, ok := byColl[ix.Coll]; !ok {
			colls = append(colls, ix.Coll)
		}
		byColl[ix.Coll] = append(byColl[ix.Coll], mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)})
	}
	for _, c := range colls {
		// One index per command: FerretDB (which the tests run) panics on a createIndexes that
		// repeats two or more existing indexes, as every projector start after the first does.
		for _, m := range byColl[c] {
			if err := s.createIndexes(ctx, c, []mongo.IndexModel{m}); err != nil {
				return err
			}
		}
	}
	return nil
}

// createIndexes is bounded by ctx alone, not by the operation timeout: building an index over a
// large collection takes far longer than one query.
func (s *Store) createIndexes(ctx context.Context, coll string, models []mongo.IndexModel) error {
	if _, err := s.coll(coll).Indexes().CreateMany(ctx, models); err != nil {
		return fmt.Errorf("create indexes on %s: %w", coll, err)
	}
	return nil
}

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

// Get returns one document, or an error wrapping readstore.ErrNotFound.
func (s *Store) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	raw, err := s.coll(coll).FindOne(ctx, bson.D{{Key: idField, Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return readstore.Doc{}, fmt.Errorf("get %s/%s: %w", coll, id, readstore.ErrNotFound)
	}
	if err != nil {
		return readstore.Doc{}, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	return docFromBSON(raw)
}

// GetMany returns the documents that exist among ids, in no particular order.
func (s *Store) GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	docs, err := s.find(ctx, coll, bson.D{{Key: idField, Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find())
	if err != nil {
		return nil, fmt.Errorf("get %d documents from %s: %w", len(ids), coll, err)
	}
	return docs, nil
}

// Find runs q. Sort fields must hold strings or integers; cursor values may be ints of any size,
// float64 holding an integer (as decoded from JSON), strings or bools.
func (s *Store) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	filter, err := findFilter(q)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("find in %s: limit %d is negative", q.Coll, q.Limit)
	}
	sort := bson.D{}
	for _, o := range q.Sort {
		sort = append(sort, bson.E{Key: o.Name, Value: direction(o.Desc)})
	}
	sort = append(sort, bson.E{Key: idField, Value: 1})
	fo := options.Find().SetSort(sort)
	if q.Limit > 0 {
		fo.SetLimit(int64(q.Limit))
	}
	docs, err := s.find(ctx, q.Coll, filter, fo)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	return docs, nil
}

func direction(desc bool) int {
	if desc {
		return -1
	}
	return 1
}

func (s *Store) find(ctx context.Context, coll string, filter bson.D, fo *options.FindOptionsBuilder) ([]readstore.Doc, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.coll(coll).Find(ctx, filter, fo)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var docs []readstore.Doc
	for cur.Next(ctx) {
		d, err := docFromBSON(cur.Current)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, cur.Err()
}

// findFilter turns q's conditions into one filter. Conditions on the same field are joined with
// $and, since a document cannot hold one key twice.
func findFilter(q readstore.Query) (bson.D, error) {
	var conds bson.D
	for _, f := range q.Eq {
		v, err := scalar(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		conds = append(conds, bson.E{Key: f.Name, Value: v})
	}
	for _, t := range q.ContainsAll {
		conds = append(conds, bson.E{Key: t.Name, Value: bson.D{{Key: "$all", Value: t.Values}}})
	}
	if q.After != nil {
		after, err := keyset(q.Sort, q.After)
		if err != nil {
			return nil, err
		}
		conds = append(conds, after)
	}
	seen := map[string]bool{}
	for _, c := range conds {
		if seen[c.Key] {
			and := bson.A{}
			for _, c := range conds {
				and = append(and, bson.D{c})
			}
			return bson.D{{Key: "$and", Value: and}}, nil
		}
		seen[c.Key] = true
	}
	if conds == nil {
		conds = bson.D{}
	}
	return conds, nil
}

// keyset selects what sorts after the cursor: (f1 beyond v1) or (f1 = v1 and f2 beyond v2) or
// ... or (all equal and _id > id), where beyond is $gt ascending and $lt descending.
func keyset(sort []readstore.Order, c *readstore.Cursor) (bson.E, error) {
	if len(c.Values) != len(sort) {
		return bson.E{}, fmt.Errorf("cursor has %d values for %d sort fields", len(c.Values), len(sort))
	}
	vals := make([]any, len(c.Values))
	for i, v := range c.Values {
		n, err := scalar(v)
		if err != nil {
			return bson.E{}, fmt.Errorf("cursor value for %s: %w", sort[i].Name, err)
		}
		vals[i] = n
	}
	idAfter := bson.E{Key: idField, Value: bson.D{{Key: "$gt", Value: c.ID}}}
	if len(sort) == 0 {
		return idAfter, nil
	}
	or := bson.A{}
	for i := 0; i <= len(sort); i++ {
		clause := bson.D{}
		for j := range i {
			clause = append(clause, bson.E{Key: sort[j].Name, Value: vals[j]})
		}
		if i == len(sort) {
			clause = append(clause, idAfter)
		} else {
			op := "$gt"
			if sort[i].Desc {
				op = "$lt"
			}
			clause = append(clause, bson.E{Key: sort[i].Name, Value: bson.D{{Key: op, Value: vals[i]}}})
		}
		or = append(or, clause)
	}
	return bson.E{Key: "$or", Value: or}, nil
}

// scalar normalises a filter or cursor value: every integer type, and a float64 that holds an
// integer, becomes int64, so that it compares as stored (bodyToBSON stores integers as int64).
func scalar(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, int64:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit in an int64", x)
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit in an int64", x)
		}
		return int64(x), nil
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt64 && x < math.MaxInt64 {
			return int64(x), nil
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a number to compare with", x)
		}
		return x, nil
	case interface{ Int64() (int64, error) }: // json.Number
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
	}
	return nil, fmt.Errorf("value %v of type %T is not a string, bool or number", v, v)
}

// deadLetter is how a readstore.DeadLetter is stored. Its _id makes recording the same failure
// twice (a projector retried after a crash) keep one copy. At is stored as a BSON date, which
// keeps milliseconds.
type deadLetter struct {
	ID         deadLetterID `bson:"_id"`
	Projection string       `bson:"projection"`
	Position   int64        `bson:"position"`
	EventID    string       `bson:"eventId"`
	EventType  string       `bson:"eventType"`
	Error      string       `bson:"error"`
	At         time.Time    `bson:"at"`
}

type deadLetterID struct {
	Projection string `bson:"projection"`
	Position   int64  `bson:"position"`
	EventID    string `bson:"eventId"`
}

// AddDeadLetter records an event a projection gave up on; recording it again replaces it.
func (s *Store) AddDeadLetter(ctx context.Context, d readstore.DeadLetter) error {
	if d.Position > math.MaxInt64 {
		return fmt.Errorf("add dead letter of %s: position %d does not fit in a BSON int64", d.Projection, d.Position)
	}
	if err := s.checkFence(ctx); err != nil {
		return fmt.Errorf("add dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	pos := int64(d.Position)
	doc := deadLetter{
		ID:         deadLetterID{Projection: d.Projection, Position: pos, EventID: d.EventID},
		Projection: d.Projection, Position: pos, EventID: d.EventID, EventType: d.EventType,
		Error: d.Error, At: d.At.UTC(),
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.coll(deadLettersColl).ReplaceOne(ctx, bson.D{{Key: idField, Value: doc.ID}}, doc, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("add dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	return nil
}

// DeadLetters lists projection's dead letters by position.
func (s *Store) DeadLetters(ctx context.Context, projection string) ([]readstore.DeadLetter, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.coll(deadLettersColl).Find(ctx, bson.D{{Key: "projection", Value: projection}},
		options.Find().SetSort(bson.D{{Key: "position", Value: 1}, {Key: "eventId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", projection, err)
	}
	defer cur.Close(ctx)
	var out []readstore.DeadLetter
	for cur.Next(ctx) {
		var d deadLetter
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("list dead letters of %s: %w", projection, err)
		}
		out = append(out, readstore.DeadLetter{
			Projection: d.Projection, Position: uint64(d.Position), EventID: d.EventID,
			EventType: d.EventType, Error: d.Error, At: d.At.UTC(),
		})
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", projection, err)
	}
	return out, nil
}

// Drop deletes the collections colls and projection's checkpoint.
func (s *Store) Drop(ctx context.Context, projection string, colls []string) error {
	if err := s.checkFence(ctx); err != nil {
		return fmt.Errorf("drop %s: %w", projection, err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	for _, c := range colls {
		if err := s.coll(c).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: collection %s: %w", projection, c, err)
		}
	}
	if _, err := s.coll(checkpointsColl).DeleteOne(ctx, bson.D{{Key: idField, Value: projection}}); err != nil {
		return fmt.Errorf("drop %s: checkpoint: %w", projection, err)
	}
	return nil
}

type leaseDoc struct {
	ID      string    `bson:"_id"`
	Owner   string    `bson:"owner"`
	Token   int64     `bson:"token"`
	Expires time.Time `bson:"expires"`
}

// checkFence refuses a write whose context claims a lease token that is no longer the lease's.
// MongoDB writes here are not one transaction with the check, so an owner that pauses between the
// check and its writes can still land them; its document writes are position-guarded and carry
// what the new owner would write for the same events, and its checkpoint cannot overwrite a newer
// owner's (see Commit).
func (s *Store) checkFence(ctx context.Context) error {
	f, ok := readstore.FenceFrom(ctx)
	if !ok {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var l leaseDoc
	err := s.coll(leasesColl).FindOne(ctx, bson.D{{Key: idField, Value: f.Lease}}).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && uint64(l.Token) != f.Token) {
		return readstore.ErrFenced
	}
	return err
}

// AcquireLease implements readstore.Leaser. Expiry uses the clocks of the processes that share
// the lease, so the lease's ttl must be far longer than their skew.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (readstore.Lease, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := time.Now()
	until := now.Add(ttl)
	after := options.FindOneAndUpdate().SetReturnDocument(options.After)
	var l leaseDoc
	// Ours already: extend it, keeping the token.
	err := s.coll(leasesColl).FindOneAndUpdate(ctx, bson.D{{Key: idField, Value: name}, {Key: "owner", Value: owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: until}}}}, after).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Expired: take it with the next token.
		err = s.coll(leasesColl).FindOneAndUpdate(ctx, bson.D{{Key: idField, Value: name}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: owner}, {Key: "expires", Value: until}}},
				{Key: "$inc", Value: bson.D{{Key: "token", Value: int64(1)}}}}, after).Decode(&l)
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Never taken: the first owner creates it; a concurrent creator or a live holder makes
		// the insert collide.
		l = leaseDoc{ID: name, Owner: owner, Token: 1, Expires: until}
		_, err = s.coll(leasesColl).InsertOne(ctx, l)
		if mongo.IsDuplicateKeyError(err) {
			var held leaseDoc
			if ferr := s.coll(leasesColl).FindOne(ctx, bson.D{{Key: idField, Value: name}}).Decode(&held); ferr == nil {
				return readstore.Lease{Name: name, Owner: held.Owner, Token: uint64(held.Token), Expires: held.Expires}, readstore.ErrLeaseHeld
			}
			return readstore.Lease{}, readstore.ErrLeaseHeld
		}
	}
	if err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return readstore.Lease{Name: name, Owner: l.Owner, Token: uint64(l.Token), Expires: l.Expires}, nil
}

// ReleaseLease implements readstore.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	// Expire it rather than delete it, so the next owner's token is still larger.
	if _, err := s.coll(leasesColl).UpdateOne(ctx, bson.D{{Key: idField, Value: name}, {Key: "owner", Value: owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: time.Unix(0, 0)}}}}); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

var _ readstore.Leaser = (*Store)(nil)
