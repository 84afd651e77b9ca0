package mongostore

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/edutrack/edutrack/projections/readstore"
)

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
	if q.PositionAfter > 0 {
		if q.PositionAfter > math.MaxInt64 {
			return nil, fmt.Errorf("position %d does not fit in a BSON int64", q.PositionAfter)
		}
		conds = append(conds, bson.E{Key: posField, Value: bson.D{{Key: "$gt", Value: int64(q.PositionAfter)}}})
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
