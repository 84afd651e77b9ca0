package reactors

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationLock keys the advisory lock that lets one process at a time bring the queue's tables
// up to date, as processes starting together on one database would otherwise race to.
const migrationLock = 0x656475747261636b // "edutrack"

// OpenPostgresQueue opens the job queue in the PostgreSQL database at url (a postgres:// URL,
// pgxpool's settings such as pool_max_conns included) and brings its tables up to date.
func OpenPostgresQueue(ctx context.Context, url string, opts QueueOptions) (_ *Queue, err error) {
	cfg, err := riverConfig(opts)
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's error would show the URL, password included.
		return nil, errors.New("the job queue's PostgreSQL URL does not parse")
	}
	// River holds a connection to listen for new jobs, and each worker takes one to finish its
	// job: pgxpool's default of four per CPU is too few on a small machine. A URL that sets
	// pool_max_conns (as a query parameter or a keyword) keeps its own.
	if !strings.Contains(url, "pool_max_conns") {
		poolCfg.MaxConns = max(poolCfg.MaxConns, 20)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("open the job queue on PostgreSQL: %w", err)
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	driver := riverpgxv5.New(pool)
	if err := migratePostgres(ctx, pool, driver, opts); err != nil {
		return nil, err
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("start the job client: %w", err)
	}
	return newQueue(newPgxStore(pool, client), client, opts)
}

// migratePostgres runs River's migrations and creates the reactor's tables under an advisory
// lock: a second process waits, then finds them done. (Not in one transaction: a migration of
// River's adds an enum value and uses it, which PostgreSQL allows only across commits.)
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, driver *riverpgxv5.Driver, opts QueueOptions) error {
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: libraryLog(opts.Logger)})
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("open the job queue on PostgreSQL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("lock the job queue's migrations: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate the job queue: %w", err)
	}
	if _, err := conn.Exec(ctx, schema); err != nil {
		return fmt.Errorf("create the reactor's tables: %w", err)
	}
	return nil
}
