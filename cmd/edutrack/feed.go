package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// newChangeFeed is the change feed of this process: the projector's commits go in, the live
// streams' hub takes them out. For now every process has the in-process feed, so live updates
// reach the streams of the process that projects; the Redis feed (EDUTRACK_REDIS_URL) carries
// them to the other processes once it lands.
func newChangeFeed(config) changes.Feed { return changes.NewMemory(0) }

// publishingStore publishes each commit's changed documents of the live read models on the
// change feed, once the commit has succeeded. It stands in for the runner's own publishing,
// which is being built beside this (h-feed); drop it from project() when that lands, or every
// change is published twice.
type publishingStore struct {
	readstore.Store
	feed changes.Feed
	log  *slog.Logger
	// live names the live generation of each read model; nil until the runner exists.
	live atomic.Pointer[projections.Live]
}

// feedReadModels are the read models whose changes live streams show, and their projections.
var feedReadModels = map[string]string{
	documents.Dashboards: documents.LearnersProjection, documents.Rosters: documents.LearnersProjection,
	documents.CourseDetails: documents.CoursesProjection, documents.Stats: documents.CoursesProjection,
	documents.Catalog: documents.CoursesProjection,
}

func (s *publishingStore) Commit(ctx context.Context, projection string, checkpoint uint64, writes []readstore.Write) error {
	if err := s.Store.Commit(ctx, projection, checkpoint, writes); err != nil {
		return err
	}
	live := s.live.Load()
	if live == nil {
		return nil
	}
	// A generation being built writes under names of its own: only the live one's documents
	// are what the read API serves.
	names := make(map[string]string, len(feedReadModels))
	for coll := range feedReadModels {
		names[live.Coll(coll)] = coll
	}
	batches := map[string]*changes.Batch{}
	for _, w := range writes {
		coll, ok := names[w.Coll]
		if !ok {
			continue
		}
		proj := feedReadModels[coll]
		b := batches[proj]
		if b == nil {
			b = &changes.Batch{Projection: proj, CommittedAt: time.Now()}
			batches[proj] = b
		}
		b.Changes = append(b.Changes, changes.Change{Coll: coll, ID: w.Doc.ID, Position: w.Doc.Position})
	}
	for _, b := range batches {
		if err := s.feed.Publish(ctx, *b); err != nil {
			// The commit stands; the feed says Resync to its readers when it loses messages.
			s.log.Warn("publish a commit's changes", "projection", b.Projection, "err", err)
		}
	}
	return nil
}
