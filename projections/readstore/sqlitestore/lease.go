package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

// checkFence refuses a write whose context claims a lease token that is no longer the lease's.
// It runs inside the write's transaction, and the store has one writer at a time, so no owner
// change can come between the check and the write.
func (s *Store) checkFence(ctx context.Context, tx *sql.Tx) error {
	f, ok := readstore.FenceFrom(ctx)
	if !ok {
		return nil
	}
	var token int64
	err := tx.StmtContext(ctx, s.fence).QueryRowContext(ctx, f.Lease).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && uint64(token) != f.Token) {
		return readstore.ErrFenced
	}
	return err
}

// AcquireLease implements readstore.Leaser. Expiry uses this machine's clock, which every process
// sharing the file shares.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (readstore.Lease, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	defer tx.Rollback()
	now := time.Now()
	var holder string
	var token, expires int64
	err = tx.QueryRowContext(ctx, `SELECT owner, token, expires FROM leases WHERE name = ?`, name).Scan(&holder, &token, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		token = 1
	case err != nil:
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	case holder == owner:
	case now.UnixNano() < expires:
		return readstore.Lease{Name: name, Owner: holder, Token: uint64(token), Expires: time.Unix(0, expires)}, readstore.ErrLeaseHeld
	default:
		token++
	}
	until := now.Add(ttl)
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, owner, token, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires = excluded.expires`,
		name, owner, token, until.UnixNano()); err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return readstore.Lease{Name: name, Owner: owner, Token: uint64(token), Expires: until}, nil
}

// ReleaseLease implements readstore.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	// Expire it rather than delete it, so the next owner's token is still larger.
	if _, err := s.wdb.ExecContext(ctx, `UPDATE leases SET expires = 0 WHERE name = ? AND owner = ?`, name, owner); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

var _ readstore.Leaser = (*Store)(nil)
