package reactors

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// The queue's engines differ in River's transaction type (*sql.Tx on SQLite, pgx.Tx on
// PostgreSQL); these few methods are all the reactor asks of either, so the reactor and its
// lease are written once. Statements use $1-style parameters, which both engines read.

// querier runs the reactor's own statements, on the database or in a transaction.
type querier interface {
	// exec runs a statement and returns how many rows it changed.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// queryRow runs a query; Scan returns an error matching sql.ErrNoRows when there is no row.
	queryRow(ctx context.Context, query string, args ...any) interface{ Scan(dest ...any) error }
	// query runs a query and calls row with the Scan of each row in turn.
	query(ctx context.Context, query string, row func(scan func(dest ...any) error) error, args ...any) error
}

// store is the database of a queue.
type store interface {
	querier
	begin(ctx context.Context) (storeTx, error)
	ping(ctx context.Context) error
	close() error
}

// storeTx is a transaction that takes River's inserts beside the reactor's statements.
type storeTx interface {
	querier
	insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// jobClient is River's client, whatever its transaction type.
type jobClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
}

// sqlQuerier runs statements through database/sql, on a *sql.DB or a *sql.Tx.
type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	}
}

func (s sqlQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlQuerier) queryRow(ctx context.Context, query string, args ...any) interface{ Scan(dest ...any) error } {
	return s.q.QueryRowContext(ctx, query, args...)
}

func (s sqlQuerier) query(ctx context.Context, query string, row func(scan func(dest ...any) error) error, args ...any) error {
	rows, err := s.q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

type sqlStore struct {
	sqlQuerier
	db     *sql.DB
	client *river.Client[*sql.Tx]
}

func newSQLStore(db *sql.DB, client *river.Client[*sql.Tx]) sqlStore {
	return sqlStore{sqlQuerier: sqlQuerier{db}, db: db, client: client}
}

func (s sqlStore) begin(ctx context.Context) (storeTx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{sqlQuerier{tx}, tx, s.client}, nil
}

func (s sqlStore) ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s sqlStore) close() error                   { return s.db.Close() }

type sqlTx struct {
	sqlQuerier
	tx     *sql.Tx
	client *river.Client[*sql.Tx]
}

func (t sqlTx) insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return t.client.InsertTx(ctx, t.tx, args, opts)
}
func (t sqlTx) commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context) error { return t.tx.Rollback() }

// pgxQuerier runs statements through pgx, on the pool or in a pgx.Tx.
type pgxQuerier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (p pgxQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// queryRow's Scan returns pgx.ErrNoRows, which matches sql.ErrNoRows.
func (p pgxQuerier) queryRow(ctx context.Context, query string, args ...any) interface{ Scan(dest ...any) error } {
	return p.q.QueryRow(ctx, query, args...)
}

func (p pgxQuerier) query(ctx context.Context, query string, row func(scan func(dest ...any) error) error, args ...any) error {
	rows, err := p.q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

type pgxStore struct {
	pgxQuerier
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func newPgxStore(pool *pgxpool.Pool, client *river.Client[pgx.Tx]) pgxStore {
	return pgxStore{pgxQuerier: pgxQuerier{pool}, pool: pool, client: client}
}

func (s pgxStore) begin(ctx context.Context) (storeTx, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgxTx{pgxQuerier{tx}, tx, s.client}, nil
}

func (s pgxStore) ping(ctx context.Context) error { return s.pool.Ping(ctx) }
func (s pgxStore) close() error                   { s.pool.Close(); return nil }

type pgxTx struct {
	pgxQuerier
	tx     pgx.Tx
	client *river.Client[pgx.Tx]
}

func (t pgxTx) insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return t.client.InsertTx(ctx, t.tx, args, opts)
}
func (t pgxTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
