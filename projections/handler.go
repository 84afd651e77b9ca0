package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/readstore"
)

// applyError is a batch that failed at one event.
type applyError struct {
	key   string
	event eventstore.RecordedEvent
	err   error
}

func (e *applyError) Error() string {
	return fmt.Sprintf("%s: apply %s at position %d: %v", e.key, e.event.Type, e.event.Position, e.err)
}

func (e *applyError) Unwrap() error { return e.err }

// handler folds one message's batch. When an event fails, the events before it are committed
// first, so the projection stops exactly at the event it cannot apply.
func (r *Runner) handler(s *slot) message.NoPublishHandlerFunc {
	p := s.g.p
	return func(msg *message.Message) error {
		events := batchOf(msg)
		if len(events) == 0 || s.retired.Load() {
			return nil
		}
		ctx := msg.Context()
		skips := s.g.skips(s.gen.Version)
		tx := newTx(r.store, s.names, s.hot)
		ok := false
		defer func() {
			if !ok {
				s.hot.clear() // the failed batch may have changed cached values in place
			}
		}()
		// done counts the events handled: applied, or skipped by an operator.
		done := 0
		var failed error
		decoded := events
		for i, e := range events {
			if e.err != nil && !skips[e.Position] {
				failed = &applyError{key: s.key, event: e.RecordedEvent, err: e.err}
				decoded = events[:i]
				break
			}
		}
		if pf, ok := p.(Prefetcher); ok {
			if err := prefetch(ctx, tx, pf, decoded, skips); err != nil {
				return err
			}
		}
		for _, e := range decoded {
			if skips[e.Position] {
				done++
				continue
			}
			tx.pos = e.Position
			if err := p.Apply(ctx, tx, e); err != nil {
				failed = &applyError{key: s.key, event: e.RecordedEvent, err: err}
				break
			}
			done++
		}
		if failed != nil && done > 0 {
			// The failing event may have changed documents before it failed: apply the events
			// before it again, from the store, so the commit holds exactly them.
			tx = newTx(r.store, s.names, nil)
			for _, e := range decoded[:done] {
				if skips[e.Position] {
					continue
				}
				tx.pos = e.Position
				if err := p.Apply(ctx, tx, e); err != nil {
					return err
				}
			}
		}
		if done > 0 {
			if err := r.commit(ctx, s, tx, decoded[done-1].Position, done); err != nil {
				return err
			}
		}
		ok = failed == nil
		if failed == nil {
			last := events[len(events)-1].Position
			if head, err := r.log.Head(ctx); err == nil {
				r.metrics.lag.WithLabelValues(s.key).Set(float64(head - min(head, last)))
				status := StatusRunning
				if head > last {
					status = StatusCatchingUp
				}
				if r.slotStatus(s.key) != status {
					r.setStatus(s.key, status)
				}
			}
			if s.g.isBuild(s) {
				return r.promote(ctx, s, true)
			}
		}
		return failed
	}
}

func (g *group) skips(version int) map[uint64]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out map[uint64]bool
	for _, sk := range g.reg.Skips {
		if sk.Version == version {
			if out == nil {
				out = map[uint64]bool{}
			}
			out[sk.Position] = true
		}
	}
	return out
}

func (g *group) isBuild(s *slot) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.build == s
}

func prefetch(ctx context.Context, tx *Tx, pf Prefetcher, events []Event, skips map[uint64]bool) error {
	byColl := map[string][]string{}
	seen := map[DocRef]bool{}
	for _, e := range events {
		if skips[e.Position] {
			continue
		}
		for _, ref := range pf.Refs(e) {
			if !seen[ref] {
				seen[ref] = true
				byColl[ref.Coll] = append(byColl[ref.Coll], ref.ID)
			}
		}
	}
	for coll, ids := range byColl {
		if err := tx.Prefetch(ctx, coll, ids); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) commit(ctx context.Context, s *slot, tx *Tx, checkpoint uint64, handled int) error {
	writes, err := tx.writes()
	if err != nil {
		return err
	}
	// The live generation commits under the group's lock, so that a switch to a new generation
	// sees its position settled, and nothing it commits lands after the switch. A generation
	// being built commits without it: only its own handler can make it live, after this commit,
	// and its big batches would otherwise hold the live generation's commits back.
	s.g.mu.Lock()
	if s.g.live != s {
		s.g.mu.Unlock()
		return r.write(ctx, s, tx, writes, checkpoint, handled, false)
	}
	if err := r.write(ctx, s, tx, writes, checkpoint, handled, true); err != nil {
		s.g.mu.Unlock()
		return err
	}
	// Announced once committed, when a reader that hears of it can read it. Only the live
	// generation announces: a generation being built is announced whole, by its switch.
	b, ok := changed(s, writes, r.opts.Now())
	r.announceAndUnlock(ctx, s.g, b, ok)
	return nil
}

// write commits a batch of s. live says that s is the live generation, whose caller holds the
// group's lock, and whose documents go to the cache first.
func (r *Runner) write(ctx context.Context, s *slot, tx *Tx, writes []readstore.Write, checkpoint uint64, handled int, live bool) error {
	if s.retired.Load() {
		return nil
	}
	name := s.g.p.Name()
	if live && !r.setCache(ctx, s, writes, checkpoint) {
		// Raised in this process before the commit, and for the others with it: from now on no
		// reader trusts an entry of this projection known current only as of an earlier
		// position, so the entries the failed writes left behind are never served again.
		r.positions.RaiseCacheFence(name, checkpoint)
		writes = append(writes, fenceWrite(s.key, checkpoint))
	}
	start := time.Now()
	if err := r.store.Commit(ctx, s.key, checkpoint, writes); err != nil {
		return fmt.Errorf("%s: commit up to %d: %w", s.key, checkpoint, err)
	}
	r.metrics.batchSeconds.WithLabelValues(s.key).Observe(time.Since(start).Seconds())
	r.metrics.applied.WithLabelValues(s.key).Add(float64(handled))
	r.metrics.position.WithLabelValues(s.key).Set(float64(checkpoint))
	s.applied.Add(int64(handled))
	s.position.Store(checkpoint)
	tx.remember()
	r.positions.Advance(s.key, checkpoint)
	if live {
		r.positions.Advance(name, checkpoint)
		if s.key != name {
			r.metrics.position.WithLabelValues(name).Set(float64(checkpoint))
		}
	}
	return nil
}

// setCache writes the documents served by id that a batch of the live generation changed to
// the cache, known current as of the batch's checkpoint, and reports whether every write
// succeeded. It stops at the first failure: the fence the caller then raises makes every older
// entry of the projection a miss, so writing the rest would only make a Redis outage slower.
//
// The cache comes before the store: a read process elsewhere learns of this commit from the
// checkpoint in the store and then serves the shared cache, which must not hold the documents as
// they were before it. Set for a commit that then fails, an entry holds what the retry, or the
// next lease holder, writes again. A generation being built stays out of the cache; it is warmed
// when it takes over.
func (r *Runner) setCache(ctx context.Context, s *slot, writes []readstore.Write, checkpoint uint64) bool {
	name := s.g.p.Name()
	for _, w := range writes {
		if _, public := s.public[w.Coll]; !public {
			continue
		}
		e := cache.Entry{Position: w.Doc.Position, AsOf: checkpoint, Body: w.Doc.Body}
		if err := r.cache.Set(ctx, CacheKey(w.Coll, w.Doc.ID), e); err != nil {
			r.metrics.cacheFences.WithLabelValues(name).Inc()
			if !s.cacheDown {
				s.cacheDown = true
				r.logger.Warn("cache write failed: the projection's cache entries from before this batch are ignored until read again from the store",
					"projection", name, "fence", checkpoint, "err", err)
			}
			return false
		}
	}
	if s.cacheDown {
		s.cacheDown = false
		r.logger.Info("cache writes succeed again", "projection", name, "position", checkpoint)
	}
	return true
}

// deadLetters records a batch's failing event once retries gave up, and marks the projection
// stalled; the subscriber then holds the projection at that event until an operator retries or
// skips it.
func (r *Runner) deadLetters(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var ae *applyError
		if errors.As(err, &ae) {
			d := readstore.DeadLetter{Projection: ae.key, Position: ae.event.Position, EventID: ae.event.ID.String(),
				EventType: ae.event.Type, Error: ae.err.Error(), At: r.opts.Now().UTC()}
			if derr := r.store.AddDeadLetter(msg.Context(), d); derr != nil {
				r.logger.Error("record dead letter", "projection", ae.key, "position", d.Position, "err", derr)
			}
			r.metrics.deadLetters.WithLabelValues(ae.key).Inc()
			r.mu.Lock()
			s := r.slots[ae.key]
			r.mu.Unlock()
			if s != nil {
				s.stalledAt.Store(d.Position)
			}
			r.setStatus(ae.key, StatusStalled)
			r.logger.Error("projection stalled", "projection", ae.key, "position", d.Position, "type", d.EventType, "err", ae.err)
			stall(msg)
		}
		return out, err
	}
}
