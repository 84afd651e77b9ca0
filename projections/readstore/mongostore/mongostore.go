// Package mongostore keeps the read models in MongoDB (official driver v2), for deployments that
// outgrow the embedded store: one Mongo collection per read-model collection, position-guarded
// upserts, and no reliance on transactions, $text or change streams.
package mongostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
