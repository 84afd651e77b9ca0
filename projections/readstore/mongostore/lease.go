package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/edutrack/edutrack/projections/readstore"
)

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
