package projections

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
)

// promote makes s, a generation being built, the live one once it has caught up with the live
// one: the cache is warmed with its documents, its registration written, and the read API
// switched, all while the live generation cannot commit. The old generation is dropped later.
// Only s's handler goroutine may warm, since it owns s.hot.
func (r *Runner) promote(ctx context.Context, s *slot, warm bool) error {
	g := s.g
	g.mu.Lock()
	switched, err := r.switchTo(ctx, s, warm)
	if err != nil || !switched {
		g.mu.Unlock()
		return err
	}
	// The new generation's documents may differ from the old one's at the same positions (new
	// code builds them), so a client cannot tell from positions what changed: it reads again.
	r.announceAndUnlock(ctx, g, changes.Batch{Projection: g.p.Name(), Resync: true, CommittedAt: r.opts.Now()}, true)
	return nil
}

// switchTo is promote under the group's lock; it reports whether s went live.
func (r *Runner) switchTo(ctx context.Context, s *slot, warm bool) (bool, error) {
	g := s.g
	name := g.p.Name()
	cp := s.position.Load()
	if g.build != s || cp < max(r.positions.Position(name), g.floor) {
		return false, nil
	}
	if warm {
		r.warm(ctx, s, cp)
	}
	reg := g.reg.clone()
	old := reg.Live
	reg.Live, reg.Build = s.gen, nil
	reg.Retired = append(reg.Retired, old)
	// The new generation's cache is trusted from cp on: its keys may hold entries of an earlier
	// attempt at this switch (a crash, a failed registration write) that its warming did not
	// replace. Its fence is written with the registration that makes it live (before it, on
	// MongoDB), so a process that follows the switch reads the fence too.
	if err := saveRegistration(ctx, r.store, name, &reg, fenceWrite(s.key, cp)); err != nil {
		return false, err
	}
	g.reg = reg
	r.positions.RaiseCacheFence(name, cp)
	r.live.set(name, s.gen)
	r.positions.Advance(name, cp)
	r.metrics.position.WithLabelValues(name).Set(float64(cp))
	oldSlot := g.live
	if oldSlot != nil {
		oldSlot.retired.Store(true)
	}
	g.live, g.build = s, nil
	if g.ahead {
		r.logger.Info("projection rebuilt from the log after its read models were found ahead of it", "projection", name)
	}
	g.ahead, g.floor = false, 0
	r.metrics.ahead.WithLabelValues(name).Set(0)
	r.logger.Info("projection switched to its new generation", "projection", name,
		"generation", s.gen.N, "version", s.gen.Version, "position", cp, "replaced", old.N)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.retire(name, oldSlot, old)
	}()
	return true, nil
}

// warm puts the documents the new generation has kept decoded, its recently written ones,
// into the cache, known current as of cp. It runs on s's handler goroutine, which owns s.hot. It
// stops at the first failed write: under the group's lock, a Redis outage would otherwise hold
// the live generation's commits back for a timeout per document, and the fence the switch
// raises keeps readers from entries it did not write.
func (r *Runner) warm(ctx context.Context, s *slot, cp uint64) {
	n := 0
	var failed error
	s.hot.each(func(k docKey, h hotDoc) {
		coll := s.gen.name(k.coll)
		if _, public := s.public[coll]; failed != nil || !public {
			return
		}
		body, err := json.Marshal(h.val)
		if err != nil {
			return
		}
		if failed = r.cache.Set(ctx, CacheKey(coll, k.id), cache.Entry{Position: h.pos, AsOf: cp, Body: body}); failed == nil {
			n++
		}
	})
	if failed != nil {
		r.logger.Warn("cache warming for the new generation stopped", "projection", s.key, "documents", n, "err", failed)
		return
	}
	r.logger.Debug("cache warmed for the new generation", "projection", s.key, "documents", n)
}

// retire stops a replaced generation's handler and, after the grace period, drops it.
func (r *Runner) retire(name string, old *slot, gen Generation) {
	r.mu.Lock()
	ctx := r.runCtx
	r.mu.Unlock()
	if old != nil {
		<-old.handler.Started()
		select {
		case <-r.router.Running():
		case <-ctx.Done():
			return
		}
		r.handlersStarting.Lock()
		//lint:ignore SA2001 the empty critical section waits for a RunHandlers call to return
		r.handlersStarting.Unlock()
		old.handler.Stop()
		select {
		case <-old.handler.Stopped():
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		delete(r.slots, old.key)
		delete(r.status, old.key)
		r.mu.Unlock()
	}
	select {
	case <-time.After(r.opts.DropGrace):
	case <-ctx.Done():
		return // the next start drops it
	}
	g := r.groups[name]
	if err := r.store.Drop(ctx, gen.key(name), r.collsOf(g.p, gen)); err != nil {
		r.logger.Error("drop a replaced generation", "projection", name, "generation", gen.N, "err", err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	reg := g.reg.clone()
	reg.Retired = slices.DeleteFunc(reg.Retired, func(x Generation) bool { return x == gen })
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		r.logger.Error("record a dropped generation", "projection", name, "generation", gen.N, "err", err)
		return
	}
	g.reg = reg
	r.logger.Info("replaced generation dropped", "projection", name, "generation", gen.N)
}
