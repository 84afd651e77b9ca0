package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

// State is what an operator sees of a projection.
type State struct {
	Name        string     `json:"name"`
	Version     int        `json:"version"`
	Generation  int        `json:"generation"`
	Position    uint64     `json:"position"`
	Head        uint64     `json:"head"`
	Lag         uint64     `json:"lag"`
	Status      string     `json:"status"`
	DeadLetters int        `json:"deadLetters"` // not yet applied nor skipped
	Rebuild     *Progress  `json:"rebuild,omitempty"`
	Frozen      bool       `json:"frozen,omitempty"` // the live generation's code version is gone; it serves, unchanged, until the rebuild takes over
	Skipped     []Skip     `json:"skipped,omitempty"`
	CheckedAt   time.Time  `json:"checkedAt"`
	stalledAt   []stallRef // the generations stalled, for skip and retry
}

type stallRef struct {
	s   *slot
	pos uint64
}

// Progress is a generation being built.
type Progress struct {
	Generation      int       `json:"generation"`
	Version         int       `json:"version"`
	Position        uint64    `json:"position"`
	Lag             uint64    `json:"lag"`
	Status          string    `json:"status"`
	StartedAt       time.Time `json:"startedAt"`
	EventsPerSecond float64   `json:"eventsPerSecond"`
	// SecondsLeft estimates the time to catch up at the rate so far; 0 while unknown.
	SecondsLeft float64 `json:"secondsLeft"`
}

// DeadLetter is a recorded dead letter with what became of it.
type DeadLetter struct {
	readstore.DeadLetter
	Generation int `json:"generation"`
	// State is pending (the projection is held at it), skipped, or applied (a retry succeeded).
	State string `json:"state"`
}

// Names lists the projections in order.
func (r *Runner) Names() []string { return append([]string(nil), r.order...) }

// List returns every projection's state.
func (r *Runner) List(ctx context.Context) ([]State, error) {
	out := make([]State, 0, len(r.order))
	for _, name := range r.order {
		st, err := r.State(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// State returns one projection's state.
func (r *Runner) State(ctx context.Context, name string) (State, error) {
	g, ok := r.groups[name]
	if !ok {
		return State{}, fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	head, err := r.log.Head(ctx)
	if err != nil {
		return State{}, err
	}
	g.mu.Lock()
	reg := g.reg.clone()
	live, build := g.live, g.build
	g.mu.Unlock()
	pos := r.positions.Position(name)
	st := State{Name: name, Version: reg.Live.Version, Generation: reg.Live.N, Position: pos, Head: head,
		Lag: head - min(head, pos), Status: r.projectionStatus(g), Frozen: live == nil && reg.Live.N > 0,
		CheckedAt: time.Now().UTC()}
	for _, sk := range reg.Skips {
		if sk.Version == reg.Live.Version || (reg.Build != nil && sk.Version == reg.Build.Version) {
			st.Skipped = append(st.Skipped, sk)
		}
	}
	for _, s := range []*slot{live, build} {
		if s == nil {
			continue
		}
		if at := s.stalledAt.Load(); at > 0 {
			st.stalledAt = append(st.stalledAt, stallRef{s: s, pos: at})
		}
		letters, err := r.store.DeadLetters(ctx, s.key)
		if err != nil {
			return State{}, err
		}
		for _, d := range letters {
			if d.Position > s.position.Load() && !skipped(reg.Skips, s.gen.Version, d.Position) {
				st.DeadLetters++
			}
		}
	}
	if build != nil {
		bp := build.position.Load()
		p := &Progress{Generation: build.gen.N, Version: build.gen.Version, Position: bp, Lag: head - min(head, bp),
			Status: r.slotStatus(build.key), StartedAt: build.started.UTC()}
		if secs := time.Since(build.started).Seconds(); secs > 0 {
			p.EventsPerSecond = float64(build.applied.Load()) / secs
			if moved := bp - min(bp, build.startPos); moved > 0 {
				p.SecondsLeft = float64(head-min(head, bp)) / (float64(moved) / secs)
			}
		}
		st.Rebuild = p
	}
	return st, nil
}

func skipped(skips []Skip, version int, pos uint64) bool {
	for _, sk := range skips {
		if sk.Version == version && sk.Position == pos {
			return true
		}
	}
	return false
}

// DeadLetters lists the dead letters of a projection's live generation and of the one being
// built.
func (r *Runner) DeadLetters(ctx context.Context, name string) ([]DeadLetter, error) {
	g, ok := r.groups[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	g.mu.Lock()
	reg := g.reg.clone()
	slots := []*slot{g.live, g.build}
	g.mu.Unlock()
	gens := []Generation{reg.Live}
	if reg.Build != nil {
		gens = append(gens, *reg.Build)
	}
	out := []DeadLetter{}
	for _, gen := range gens {
		letters, err := r.store.DeadLetters(ctx, gen.key(name))
		if err != nil {
			return nil, err
		}
		var pos uint64
		for _, s := range slots {
			if s != nil && s.gen == gen {
				pos = s.position.Load()
			}
		}
		for _, d := range letters {
			state := "applied"
			switch {
			case skipped(reg.Skips, gen.Version, d.Position):
				state = "skipped"
			case d.Position > pos:
				state = "pending"
			}
			out = append(out, DeadLetter{DeadLetter: d, Generation: gen.N, State: state})
		}
	}
	return out, nil
}

// Rebuild starts building a new generation of a projection from position 0, beside the live
// one, which keeps serving until the new one has caught up and takes over.
func (r *Runner) Rebuild(ctx context.Context, name string) (State, error) {
	g, ok := r.groups[name]
	if !ok {
		return State{}, fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	r.mu.Lock()
	runCtx := r.runCtx
	r.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil {
		return State{}, ErrNotRunning
	}
	ctx = r.writeCtx(ctx)
	g.mu.Lock()
	if g.build != nil || g.reg.Build != nil {
		g.mu.Unlock()
		return State{}, ErrRebuilding
	}
	reg := g.reg.clone()
	reg.Last++
	gen := Generation{N: reg.Last, Version: g.p.Version()}
	reg.Build = &gen
	// Whatever a crashed earlier attempt left under this generation's names goes first.
	if err := r.store.Drop(ctx, gen.key(name), r.collsOf(g.p, gen)); err != nil {
		g.mu.Unlock()
		return State{}, err
	}
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		g.mu.Unlock()
		return State{}, err
	}
	g.reg = reg
	g.mu.Unlock()
	s := r.newSlot(g, gen)
	if _, err := r.prepare(ctx, s); err != nil {
		return State{}, err
	}
	// Published once prepared, as at start: the operations read the fields prepare sets. Until
	// then the registration's Build refuses a second rebuild.
	g.mu.Lock()
	g.build = s
	g.mu.Unlock()
	r.handlersStarting.Lock()
	err := r.router.RunHandlers(runCtx)
	r.handlersStarting.Unlock()
	if err != nil {
		return State{}, err
	}
	r.logger.Info("projection rebuild started", "projection", name, "generation", gen.N, "version", gen.Version)
	return r.State(ctx, name)
}

// Skip passes over the event a projection is stalled at, which must be at position, and
// records the decision with reason; the projection then goes on.
func (r *Runner) Skip(ctx context.Context, name string, position uint64, reason string) error {
	g, ok := r.groups[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	ctx = r.writeCtx(ctx)
	g.mu.Lock()
	var target *slot
	for _, s := range []*slot{g.live, g.build} {
		if s != nil && s.stalledAt.Load() == position {
			target = s
		}
	}
	if target == nil {
		g.mu.Unlock()
		return fmt.Errorf("%w at position %d", ErrNotStalled, position)
	}
	sk := Skip{Version: target.gen.Version, Position: position, Reason: reason, At: r.opts.Now().UTC()}
	if letters, err := r.store.DeadLetters(ctx, target.key); err == nil {
		for _, d := range letters {
			if d.Position == position {
				sk.EventID, sk.EventType, sk.Error = d.EventID, d.EventType, d.Error
			}
		}
	}
	reg := g.reg.clone()
	reg.Skips = append(reg.Skips, sk)
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		g.mu.Unlock()
		return err
	}
	g.reg = reg
	g.mu.Unlock()
	r.metrics.skipped.WithLabelValues(name).Inc()
	r.logger.Warn("projection skips an event on an operator's word", "projection", target.key, "position", position,
		"event_id", sk.EventID, "type", sk.EventType, "reason", reason)
	r.resume(target)
	return nil
}

// Retry sends a stalled projection's failing event again, after a fix.
func (r *Runner) Retry(ctx context.Context, name string) error {
	g, ok := r.groups[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownProjection, name)
	}
	g.mu.Lock()
	slots := []*slot{g.live, g.build}
	g.mu.Unlock()
	n := 0
	for _, s := range slots {
		if s != nil && s.stalledAt.Load() > 0 {
			r.logger.Info("projection retries the event it stalled at", "projection", s.key, "position", s.stalledAt.Load())
			r.resume(s)
			n++
		}
	}
	if n == 0 {
		return ErrNotStalled
	}
	return nil
}

func (r *Runner) resume(s *slot) {
	s.stalledAt.Store(0)
	r.setStatus(s.key, StatusCatchingUp)
	select {
	case s.resume <- struct{}{}:
	default: // one pending resume is enough
	}
}

// reportProgress logs each rebuild's progress every ProgressEvery, and promotes a build that
// has caught up while no events come to wake its handler (as after a restart).
func (r *Runner) reportProgress(ctx context.Context) {
	tick := time.NewTicker(r.opts.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, name := range r.order {
			g := r.groups[name]
			g.mu.Lock()
			build := g.build
			g.mu.Unlock()
			if build == nil {
				continue
			}
			st, err := r.State(ctx, name)
			if err != nil || st.Rebuild == nil {
				continue
			}
			if st.Rebuild.Lag == 0 && build.stalledAt.Load() == 0 {
				if err := r.promote(ctx, build, false); err != nil {
					r.logger.Warn("switch to the rebuilt generation", "projection", name, "err", err)
				}
				continue
			}
			r.logger.Info("rebuilding", "projection", name, "generation", st.Rebuild.Generation,
				"position", st.Rebuild.Position, "head", st.Head,
				"events_per_second", int(st.Rebuild.EventsPerSecond), "seconds_left", int(st.Rebuild.SecondsLeft))
		}
	}
}

// writeCtx gives an operator's request the fence of the run (see HoldLease), so the writes it
// makes are fenced off like the runner's own once the lease is lost.
func (r *Runner) writeCtx(ctx context.Context) context.Context {
	r.mu.Lock()
	run := r.runCtx
	r.mu.Unlock()
	if run != nil {
		if f, ok := readstore.FenceFrom(run); ok {
			return readstore.WithFence(ctx, f)
		}
	}
	return ctx
}
