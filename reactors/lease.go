package reactors

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

var (
	// ErrLeaseHeld means another process holds the reactor lease.
	ErrLeaseHeld = errors.New("the reactor lease is held by another process")
	// ErrLeaseLost means the lease moved on to another process while this one reacted: its
	// transactions are refused from then on, and it must stop.
	ErrLeaseLost = errors.New("the reactor lease was lost to another process")
)

// Lease is who holds the reactor lease, until when, and its fencing token, which grows with
// every change of holder.
type Lease struct {
	Owner   string
	Token   int64
	Expires time.Time
}

// acquire takes or renews lease name for owner for ttl. Held by another owner and not expired,
// it returns that holder's lease and ErrLeaseHeld.
func (q *Queue) acquire(ctx context.Context, name, owner string, ttl time.Duration) (_ Lease, err error) {
	tx, err := q.store.begin(ctx)
	if err != nil {
		return Lease{}, err
	}
	defer tx.rollback(context.WithoutCancel(ctx))
	now := time.Now()
	var cur Lease
	var expires int64
	err = tx.queryRow(ctx, `SELECT owner, token, expires_at FROM reactor_leases WHERE name = $1`, name).
		Scan(&cur.Owner, &cur.Token, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Lease{}, err
	default:
		cur.Expires = time.Unix(0, expires)
		if cur.Owner != owner && cur.Expires.After(now) {
			return cur, ErrLeaseHeld
		}
	}
	l := Lease{Owner: owner, Token: cur.Token, Expires: now.Add(ttl)}
	// A new holder fences off what the last one had in flight. The same owner, even late to
	// renew, keeps its token: nobody else held the lease in between, or the owner would differ.
	if cur.Owner != owner {
		l.Token++
	}
	// Only over the lease as read: PostgreSQL does not lock the row read, so another process
	// may have taken the lease since, and then this changes nothing.
	n, err := tx.exec(ctx, `INSERT INTO reactor_leases (name, owner, token, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at
		WHERE reactor_leases.owner = $5 AND reactor_leases.token = $6`,
		name, l.Owner, l.Token, l.Expires.UnixNano(), cur.Owner, cur.Token)
	if err != nil {
		return Lease{}, err
	}
	if n != 1 {
		return cur, ErrLeaseHeld
	}
	return l, tx.commit(ctx)
}

// lease reads lease name; held is false when nobody ever took it.
func (q *Queue) lease(ctx context.Context, name string) (_ Lease, held bool, _ error) {
	var l Lease
	var expires int64
	err := q.store.queryRow(ctx, `SELECT owner, token, expires_at FROM reactor_leases WHERE name = $1`, name).
		Scan(&l.Owner, &l.Token, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, err
	}
	l.Expires = time.Unix(0, expires)
	return l, true, nil
}

// release gives lease name up at once, if owner still holds it.
func (q *Queue) release(name, owner string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := q.store.exec(ctx, `UPDATE reactor_leases SET expires_at = 0 WHERE name = $1 AND owner = $2`, name, owner)
	return err
}

// holdLease runs run while owner holds lease name, so that one process at a time reacts, as the
// projector does with its own lease. While another holds it, it tries again every ttl/3, so it
// takes over within 4/3 of ttl after a holder died; holding, it renews every ttl/3. run gets the
// lease's token, which every transaction it commits checks. When ctx ends, run is stopped and
// the lease released; when a renewal finds it gone, run is stopped and ErrLeaseLost returned.
func (q *Queue) holdLease(ctx context.Context, name, owner string, ttl time.Duration, log *slog.Logger,
	run func(ctx context.Context, token int64) error) error {
	every := ttl / 3
	var lease Lease
	for {
		l, err := q.acquire(ctx, name, owner, ttl)
		if err == nil {
			lease = l
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrLeaseHeld) {
			log.Info("another process holds the reactor lease; waiting", "lease", name, "holder", l.Owner, "until", l.Expires)
		} else {
			log.Warn("acquire the reactor lease", "lease", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
	log.Info("reactor lease acquired", "lease", name, "owner", owner, "token", lease.Token)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(runCtx, lease.Token) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			q.release(name, owner)
			return err
		case <-ctx.Done():
			stop()
			err := <-done
			if err := q.release(name, owner); err != nil {
				log.Warn("release the reactor lease", "lease", name, "err", err)
			}
			return err
		case <-tick.C:
		}
		l, err := q.acquire(ctx, name, owner, ttl)
		switch {
		case err == nil && l.Token == lease.Token:
			lease = l
			continue
		case err == nil, errors.Is(err, ErrLeaseHeld):
		case ctx.Err() != nil:
			continue
		case time.Now().Before(lease.Expires):
			log.Warn("renew the reactor lease; retrying", "lease", name, "err", err)
			continue
		}
		stop()
		<-done
		return fmt.Errorf("%w (lease %s, token %d)", ErrLeaseLost, name, lease.Token)
	}
}
