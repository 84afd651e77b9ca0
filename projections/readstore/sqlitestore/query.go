package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/edutrack/edutrack/projections/readstore"
)

// missingTable reports whether err says a collection's table does not exist yet.
func missingTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// Get implements readstore.Store.
func (s *Store) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	t, err := table(coll)
	if err != nil {
		return readstore.Doc{}, err
	}
	d := readstore.Doc{ID: id}
	var pos int64
	var body string
	st, err := s.prepared(ctx, `SELECT position, body FROM `+t+` WHERE id = ?`)
	if missingTable(err) {
		return d, readstore.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	err = st.QueryRowContext(ctx, id).Scan(&pos, &body)
	if errors.Is(err, sql.ErrNoRows) || missingTable(err) {
		return d, readstore.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	d.Position, d.Body = uint64(pos), []byte(body)
	return d, nil
}

// GetMany implements readstore.Store.
func (s *Store) GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error) {
	t, err := table(coll)
	if err != nil {
		return nil, err
	}
	var out []readstore.Doc
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.rdb.QueryContext(ctx, `SELECT id, position, body FROM `+t+` WHERE id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if missingTable(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get many of %s: %w", coll, err)
		}
		docs, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("get many of %s: %w", coll, err)
		}
		out = append(out, docs...)
	}
	return out, nil
}

func scan(rows *sql.Rows) ([]readstore.Doc, error) {
	defer rows.Close()
	var out []readstore.Doc
	for rows.Next() {
		var d readstore.Doc
		var pos int64
		var body string
		if err := rows.Scan(&d.ID, &pos, &body); err != nil {
			return nil, err
		}
		d.Position, d.Body = uint64(pos), []byte(body)
		out = append(out, d)
	}
	return out, rows.Err()
}

// arg turns a query value into what SQLite's JSON functions compare it with.
func arg(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string, int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
		return x, nil
	default:
		return nil, fmt.Errorf("unsupported query value %T", v)
	}
}

// Find implements readstore.Store.
func (s *Store) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	t, err := table(q.Coll)
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	for _, f := range q.Eq {
		if !namePattern.MatchString(f.Name) {
			return nil, fmt.Errorf("find in %s: invalid field %q", q.Coll, f.Name)
		}
		a, err := arg(f.Value)
		if err != nil {
			return nil, fmt.Errorf("find in %s: field %s: %w", q.Coll, f.Name, err)
		}
		where = append(where, field(f.Name)+" = ?")
		args = append(args, a)
	}
	for _, terms := range q.ContainsAll {
		if !namePattern.MatchString(terms.Name) {
			return nil, fmt.Errorf("find in %s: invalid field %q", q.Coll, terms.Name)
		}
		for _, v := range terms.Values {
			where = append(where, `EXISTS (SELECT 1 FROM json_each(body, '$.`+terms.Name+`') WHERE value = ?)`)
			args = append(args, v)
		}
	}
	if q.PositionAfter > 0 {
		if q.PositionAfter > math.MaxInt64 {
			return nil, fmt.Errorf("find in %s: position %d does not fit in an integer of SQLite", q.Coll, q.PositionAfter)
		}
		where = append(where, "position > ?")
		args = append(args, int64(q.PositionAfter))
	}
	order := make([]string, 0, len(q.Sort)+1)
	for _, o := range q.Sort {
		if !namePattern.MatchString(o.Name) {
			return nil, fmt.Errorf("find in %s: invalid sort field %q", q.Coll, o.Name)
		}
		dir := " ASC"
		if o.Desc {
			dir = " DESC"
		}
		order = append(order, field(o.Name)+dir)
	}
	order = append(order, "id ASC")
	if q.After != nil {
		cond, cargs, err := keyset(q.Sort, q.After)
		if err != nil {
			return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
		}
		where = append(where, cond)
		args = append(args, cargs...)
	}
	query := `SELECT id, position, body FROM ` + t
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + strings.Join(order, ", ")
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if missingTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	docs, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	return docs, nil
}

// keyset is the condition "after the cursor" for the given order: past the first sort value, or
// equal to it and past the second, ..., or equal to all of them and past the id.
func keyset(sort []readstore.Order, c *readstore.Cursor) (string, []any, error) {
	if len(c.Values) != len(sort) {
		return "", nil, fmt.Errorf("cursor has %d values for %d sort fields", len(c.Values), len(sort))
	}
	var ors []string
	var args []any
	for i := 0; i <= len(sort); i++ {
		var ands []string
		for j := 0; j < i; j++ {
			a, err := arg(c.Values[j])
			if err != nil {
				return "", nil, err
			}
			ands = append(ands, field(sort[j].Name)+" = ?")
			args = append(args, a)
		}
		if i < len(sort) {
			a, err := arg(c.Values[i])
			if err != nil {
				return "", nil, err
			}
			op := " > ?"
			if sort[i].Desc {
				op = " < ?"
			}
			ands = append(ands, field(sort[i].Name)+op)
			args = append(args, a)
		} else {
			ands = append(ands, "id > ?")
			args = append(args, c.ID)
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args, nil
}
