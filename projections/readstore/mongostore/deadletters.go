package mongostore

import (
	"context"
	"fmt"
	"math"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/edutrack/edutrack/projections/readstore"
)

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
