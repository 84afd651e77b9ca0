package projections

import (
	"context"
	"time"

	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/readstore"
)

// changed is the batch that announces what a commit of s, a live generation, wrote of the
// collections the read API serves, by id or in listings, under the names the read API knows them by; ok is
// false when it wrote none of them.
func changed(s *slot, writes []readstore.Write, at time.Time) (b changes.Batch, ok bool) {
	for _, w := range writes {
		if coll, announced := s.announced[w.Coll]; announced {
			b.Changes = append(b.Changes, changes.Change{Coll: coll, ID: w.Doc.ID, Position: w.Doc.Position})
		}
	}
	if len(b.Changes) == 0 {
		return changes.Batch{}, false
	}
	b.Projection, b.CommittedAt = s.g.p.Name(), at
	return b, true
}

// announceAndUnlock releases g's lock, which the caller holds for the commit or the switch it
// announces, and then, if ok, publishes b on the change feed. The feed's latency never holds
// the lock, so a slow Redis delays neither a switch nor the next commit by more than the
// announcement before it. announcing is taken before the lock is released, so the batches of a
// projection go out in the order of its commits: a replaced generation's last batch before the
// switch's Resync, and that before the new generation's first.
func (r *Runner) announceAndUnlock(ctx context.Context, g *group, b changes.Batch, ok bool) {
	if r.opts.Changes == nil || !ok {
		g.mu.Unlock()
		return
	}
	g.announcing.Lock()
	g.mu.Unlock()
	defer g.announcing.Unlock()
	r.announce(ctx, b)
}

// announceStart tells the feed's readers, once the runner has started, to read every projection
// again: the process that projected before this one (crashed, or lost its lease) may have
// committed batches it never announced, and this one resumes after them.
func (r *Runner) announceStart(ctx context.Context) {
	if r.opts.Changes == nil {
		return
	}
	for _, name := range r.order {
		g := r.groups[name]
		g.announcing.Lock()
		r.announce(ctx, changes.Batch{Projection: name, Resync: true, CommittedAt: r.opts.Now()})
		g.announcing.Unlock()
	}
}

// announce publishes b. A failure never fails the batch, which is committed already: the feed
// counts and logs its failures, and its subscribers get a Resync before its next batches. What
// was committed is announced even while the runner stops (the feed bounds its own wait).
func (r *Runner) announce(ctx context.Context, b changes.Batch) {
	if err := r.opts.Changes.Publish(context.WithoutCancel(ctx), b); err != nil {
		r.logger.Debug("change feed publish failed", "projection", b.Projection, "changes", len(b.Changes), "resync", b.Resync, "err", err)
	}
}
