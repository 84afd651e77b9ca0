package projections_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/readstore"
)

// pausingStore stalls lease renewals while paused, as a process stopped by the scheduler or a
// long GC pause would.
type pausingStore struct {
	readstore.Store
	paused atomic.Bool
}

func (s *pausingStore) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (readstore.Lease, error) {
	for s.paused.Load() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return s.Store.AcquireLease(ctx, name, owner, ttl)
}

func TestLease(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const ttl = 300 * time.Millisecond

	t.Run("a_second_process_waits_and_takes_over_when_the_first_stops", func(t *testing.T) {
		store := openStore(t)
		aCtx, stopA := context.WithCancel(context.Background())
		aRunning := make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			aDone <- projections.HoldLease(aCtx, store, "projector", "a", ttl, quiet, nil, func(ctx context.Context) error {
				close(aRunning)
				<-ctx.Done()
				return nil
			})
		}()
		<-aRunning
		var waited atomic.Int32
		bRunning := make(chan time.Time, 1)
		bCtx, stopB := context.WithCancel(context.Background())
		bDone := make(chan error, 1)
		go func() {
			bDone <- projections.HoldLease(bCtx, store, "projector", "b", ttl, quiet,
				func(ctx context.Context) error { waited.Add(1); <-ctx.Done(); return nil },
				func(ctx context.Context) error { bRunning <- time.Now(); <-ctx.Done(); return nil })
		}()
		time.Sleep(3 * ttl) // a renews all along: b must keep waiting
		select {
		case <-bRunning:
			t.Fatal("b ran while a held the lease")
		default:
		}
		if waited.Load() == 0 {
			t.Error("b never waited")
		}
		stopA()
		if err := <-aDone; err != nil {
			t.Errorf("a stopped with %v", err)
		}
		select {
		case <-bRunning:
		case <-time.After(5 * ttl):
			t.Fatal("b did not take over after a stopped")
		}
		stopB()
		if err := <-bDone; err != nil {
			t.Errorf("b stopped with %v", err)
		}
	})

	t.Run("a_paused_owner_loses_the_lease_and_cannot_write", func(t *testing.T) {
		store := openStore(t)
		a := &pausingStore{Store: store}
		aFence := make(chan context.Context, 1)
		aDone := make(chan error, 1)
		go func() {
			aDone <- projections.HoldLease(context.Background(), a, "projector", "a", ttl, quiet, nil, func(ctx context.Context) error {
				aFence <- ctx
				<-ctx.Done()
				return nil
			})
		}()
		aCtx := <-aFence
		if err := store.Commit(aCtx, "courses", 1, nil); err != nil {
			t.Fatalf("a's write while holding the lease: %v", err)
		}
		a.paused.Store(true)
		bCtx, stopB := context.WithCancel(context.Background())
		defer stopB()
		bRunning := make(chan context.Context, 1)
		bDone := make(chan error, 1)
		go func() {
			bDone <- projections.HoldLease(bCtx, store, "projector", "b", ttl, quiet, nil, func(ctx context.Context) error {
				bRunning <- ctx
				<-ctx.Done()
				return nil
			})
		}()
		var bWrite context.Context
		select {
		case bWrite = <-bRunning:
		case <-time.After(10 * ttl):
			t.Fatal("b did not take the lease of a paused owner")
		}
		// a wakes up and writes with the context it was given: refused.
		if err := store.Commit(aCtx, "courses", 2, nil); !errors.Is(err, readstore.ErrFenced) {
			t.Errorf("a's write after losing the lease: err = %v, want ErrFenced", err)
		}
		if err := store.Commit(bWrite, "courses", 2, nil); err != nil {
			t.Errorf("b's write: %v", err)
		}
		a.paused.Store(false)
		select {
		case err := <-aDone:
			if !errors.Is(err, projections.ErrLeaseLost) {
				t.Errorf("a returned %v, want ErrLeaseLost", err)
			}
		case <-time.After(10 * ttl):
			t.Fatal("a did not notice it lost the lease")
		}
		if aCtx.Err() == nil {
			t.Error("a's run was not stopped")
		}
		stopB()
		<-bDone
	})
}
