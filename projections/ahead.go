package projections

import (
	"context"
	"time"
)

// watchHead compares each projection's position with the log's head every HeadCheckEvery. A
// position past the head, twice in a row (a remote log's head may lag for a moment), means the
// log went back under a running process: the projection is reported ahead of the log, and not
// ready, until a restart rebuilds it (start does, by itself).
//
// The positions are read before the head: a position read after the head could hold events
// appended in between, and under continuous writes that reads as "ahead" on every check.
func (r *Runner) watchHead(ctx context.Context) {
	tick := time.NewTicker(r.opts.HeadCheckEvery)
	defer tick.Stop()
	seen := map[string]int{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		positions := make(map[string]uint64, len(r.order))
		for _, name := range r.order {
			positions[name] = r.positions.Position(name)
		}
		head, err := r.log.Head(ctx)
		if err != nil {
			continue
		}
		for _, name := range r.order {
			g := r.groups[name]
			pos := positions[name]
			g.mu.Lock()
			already := g.ahead
			g.mu.Unlock()
			if already || pos <= head {
				seen[name] = 0
				continue
			}
			if seen[name]++; seen[name] < 2 {
				continue
			}
			g.mu.Lock()
			g.ahead = true
			g.mu.Unlock()
			r.metrics.ahead.WithLabelValues(name).Set(1)
			r.logger.Error("a projection's read models are ahead of the event log: they hold events the log no longer has "+
				"(was the log restored from an older copy under a running process?). Restart the projecting process "+
				"(edutrack serve with the project role): at start it rebuilds them from the log by itself",
				"projection", name, "position", pos, "head", head)
		}
	}
}
