package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

// ErrLeaseLost means another process took the projector lease from this one (this one paused,
// or could not reach the store to renew it): it must stop projecting, and its writes are fenced
// off already.
var ErrLeaseLost = errors.New("the projector lease was lost to another process")

// HoldLease runs run while this process holds lease name in store, so that one process at a
// time projects. While another owner holds it, it calls waiting (which may follow the read
// models meanwhile) and tries again every ttl/3; a dead owner's lease expires after ttl, so a
// waiting process takes over within ttl and a third of it. Holding, it renews every ttl/3. run's
// context carries the lease's fence, so every write the runner makes with it is refused once the
// lease has moved on. When ctx ends, run is stopped and the lease released for the next owner at
// once; when a renewal finds the lease gone, run is stopped and ErrLeaseLost returned.
func HoldLease(ctx context.Context, store readstore.Store, name, owner string, ttl time.Duration, log *slog.Logger,
	waiting func(ctx context.Context) error, run func(ctx context.Context) error) error {
	every := ttl / 3
	var lease readstore.Lease
	for {
		l, err := store.AcquireLease(ctx, name, owner, ttl)
		if err == nil {
			lease = l
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, readstore.ErrLeaseHeld) {
			log.Info("another process holds the projector lease; waiting", "lease", name, "holder", l.Owner, "until", l.Expires)
		} else {
			log.Warn("acquire the projector lease", "lease", name, "err", err)
		}
		if err := waitFor(ctx, every, waiting); err != nil {
			return err
		}
	}
	log.Info("projector lease acquired", "lease", name, "owner", owner, "token", lease.Token)
	runCtx, stop := context.WithCancel(readstore.WithFence(ctx, readstore.Fence{Lease: name, Token: lease.Token}))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(runCtx) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			release(store, name, owner, log)
			return err
		case <-ctx.Done():
			stop()
			err := <-done
			release(store, name, owner, log)
			return err
		case <-tick.C:
		}
		l, err := store.AcquireLease(ctx, name, owner, ttl)
		switch {
		case err == nil && l.Token == lease.Token:
			lease = l
			continue
		case err == nil, errors.Is(err, readstore.ErrLeaseHeld):
			// Taken by another owner (or lost and taken back, under a new token this run's
			// writes do not carry).
		case ctx.Err() != nil:
			continue // shutting down: the case above handles it
		case time.Now().Before(lease.Expires):
			log.Warn("renew the projector lease; retrying", "lease", name, "err", err)
			continue
		}
		stop()
		<-done
		return fmt.Errorf("%w (lease %s, token %d)", ErrLeaseLost, name, lease.Token)
	}
}

// waitFor runs waiting (if any) for d, or until ctx ends.
func waitFor(ctx context.Context, d time.Duration, waiting func(ctx context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if waiting == nil {
		<-wctx.Done()
		return nil
	}
	if err := waiting(wctx); err != nil && wctx.Err() == nil {
		return err
	}
	<-wctx.Done()
	return nil
}

func release(store readstore.Store, name, owner string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.ReleaseLease(ctx, name, owner); err != nil {
		log.Warn("release the projector lease", "lease", name, "err", err)
	}
}
