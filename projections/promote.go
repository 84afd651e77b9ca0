package projections

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/edutrack/edutrack/projections/cache"
)

// promote makes s, a generation being built, the live one once it has caught up with the live
// one: the cache is warmed with its documents, its registration written, and the read API
// switched, all while the live generation cannot commit. The old generation is dropped later.
// Only s's handler goroutine may warm, since it owns s.hot.
func (r *Runner) promote(ctx context.Context, s *slot, warm bool) error {
	g := s.g
	name := g.p.Name()
	g.mu.Lock()
	defer g.mu.Unlock()
	cp := s.position.Load()
	if g.build != s || cp < r.positions.Position(name) {
		return nil
	}
	if warm {
		r.warm(ctx, s)
	}
	reg := g.reg.clone()
	old := reg.Live
	reg.Live, reg.Build = s.gen, nil
	reg.Retired = append(reg.Retired, old)
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		return err
	}
	g.reg = reg
	r.live.set(name, s.gen)
	r.positions.Advance(name, cp)
	r.metrics.position.WithLabelValues(name).Set(float64(cp))
	oldSlot := g.live
	if oldSlot != nil {
		oldSlot.retired.Store(true)
	}
	g.live, g.build = s, nil
	r.logger.Info("projection switched to its new generation", "projection", name,
		"generation", s.gen.N, "version", s.gen.Version, "position", cp, "replaced", old.N)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.retire(name, oldSlot, old)
	}()
	return nil
}

// warm puts the documents the new generation has kept decoded, its recently written ones,
// into the cache. It runs on s's handler goroutine, which owns s.hot.
func (r *Runner) warm(ctx context.Context, s *slot) {
	n := 0
	s.hot.each(func(k docKey, h hotDoc) {
		coll := s.gen.name(k.coll)
		if !s.public[coll] {
			return
		}
		body, err := json.Marshal(h.val)
		if err != nil {
			return
		}
		r.cache.Set(ctx, CacheKey(coll, k.id), cache.Entry{Position: h.pos, Body: body})
		n++
	})
	r.logger.Debug("cache warmed for the new generation", "projection", s.key, "documents", n)
}

// retire stops a replaced generation's handler and, after the grace period, drops it.
func (r *Runner) retire(name string, old *slot, gen Generation) {
	r.mu.Lock()
	ctx := r.runCtx
	r.mu.Unlock()
	if old != nil {
		<-old.handler.Started()
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
