package projections_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
)

// snapshotModels are the snapshots projection's collections, its private heads included.
var snapshotModels = []string{documents.Snapshots, documents.SnapshotIndex, "snapshot_heads"}

// everyTwo takes a snapshot every 2 events, so the short streams of the scenario have several.
var everyTwo = projections.Snapshots{Every: 2}

// checkSnapshots compares every snapshot in store with a full replay of its stream up to its
// version through the aggregate, and checks that the index lists exactly the snapshots.
func checkSnapshots(t *testing.T, l *sqlitelog.Log, store readstore.Store) int {
	t.Helper()
	ctx := context.Background()
	codec, _ := commands.NewCodec()
	snaps, err := store.Find(ctx, readstore.Query{Coll: documents.Snapshots})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]documents.SnapshotRef{}
	indexes, err := store.Find(ctx, readstore.Query{Coll: documents.SnapshotIndex})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range indexes {
		var list documents.SnapshotList
		if err := json.Unmarshal(d.Body, &list); err != nil {
			t.Fatal(err)
		}
		for i, ref := range list.Taken {
			if i > 0 && ref.Version <= list.Taken[i-1].Version {
				t.Errorf("the index of %s is not in version order: %+v", d.ID, list.Taken)
			}
			listed[documents.SnapshotID(d.ID, ref.Version)] = ref
		}
	}
	for _, d := range snaps {
		ref, ok := listed[d.ID]
		if !ok {
			t.Errorf("snapshot %s is in no index", d.ID)
			continue
		}
		delete(listed, d.ID)
		stream := d.ID[:strings.LastIndex(d.ID, "@")]
		events, err := l.ReadStream(ctx, stream, 1, int(ref.Version))
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		if last.Version != ref.Version || last.Position != ref.Position || last.RecordedAt.UnixNano() != ref.RecordedAt || string(last.Hash) != string(ref.Hash) {
			t.Errorf("snapshot %s names version %d at %d, recorded %d, hash %x; the log has %d at %d, recorded %d, hash %x", d.ID,
				ref.Version, ref.Position, ref.RecordedAt, ref.Hash, last.Version, last.Position, last.RecordedAt.UnixNano(), last.Hash)
		}
		var agg interface {
			Apply(domain.Event)
		}
		var state func() any
		if id, ok := strings.CutPrefix(stream, learner.StreamPrefix); ok {
			a := learner.New(id)
			agg, state = a, func() any { return a.State() }
		} else {
			a := course.New(strings.TrimPrefix(stream, course.StreamPrefix))
			agg, state = a, func() any { return a.State() }
		}
		for _, e := range events {
			ev, err := codec.Decode(e.Type, e.Data)
			if err != nil {
				t.Fatal(err)
			}
			agg.Apply(ev)
		}
		want, _ := json.Marshal(state())
		if diff := cmp.Diff(string(want), string(d.Body)); diff != "" {
			t.Errorf("snapshot %s differs from a full replay (-replay +snapshot):\n%s", d.ID, diff)
		}
	}
	for id := range listed {
		t.Errorf("the index lists %s, which does not exist", id)
	}
	return len(snaps)
}

func TestSnapshots(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	clean := openStore(t)
	run(t, w.log, clean, cache.NewMemory(100), everyTwo)
	if n := checkSnapshots(t, w.log, clean); n < 5 {
		t.Fatalf("%d snapshots of the scenario's streams; want several", n)
	}
	want := readstoreDump(t, clean)

	t.Run("are_the_same_when_every_event_is_delivered_again", func(t *testing.T) {
		if err := clean.Commit(context.Background(), documents.SnapshotsProjection, 0, nil); err != nil {
			t.Fatal(err)
		}
		run(t, w.log, clean, cache.NewMemory(100), everyTwo)
		if diff := cmp.Diff(want, readstoreDump(t, clean)); diff != "" {
			t.Errorf("snapshots after a full re-delivery differ from a clean replay (-want +got):\n%s", diff)
		}
	})
	t.Run("are_the_same_after_a_crash_between_documents_and_checkpoint", func(t *testing.T) {
		for _, after := range []int{0, 1, 3} {
			store := openStore(t)
			crashing := &crashingStore{Store: store}
			crashing.after.Store(int32(after))
			codec, _ := commands.NewCodec()
			r, err := projections.NewRunner(w.log, codec, crashing, cache.NewMemory(100), projections.NewPositions(),
				prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)),
				projections.Options{BatchSize: 7, MaxRetries: 1, RetryDelay: time.Millisecond}, everyTwo)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			<-r.Running()
			time.Sleep(50 * time.Millisecond) // let the doomed commits happen; the result is checked, not the time
			cancel()
			r.Close()
			<-done
			run(t, w.log, store, cache.NewMemory(100), everyTwo)
			if diff := cmp.Diff(want, readstoreDump(t, store)); diff != "" {
				t.Errorf("after a crash following %d commits, snapshots differ from a clean replay (-want +got):\n%s", after, diff)
			}
			checkSnapshots(t, w.log, store)
		}
	})
	t.Run("a_rebuilt_generation_holds_the_same_snapshots", func(t *testing.T) {
		store := openStore(t)
		run(t, w.log, store, cache.NewMemory(100), everyTwo)
		codec, _ := commands.NewCodec()
		positions := projections.NewPositions()
		r, err := projections.NewRunner(w.log, codec, store, cache.NewMemory(100), positions, prometheus.NewRegistry(),
			slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Options{BatchSize: 7, DropGrace: time.Millisecond}, everyTwo)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() { cancel(); r.Close(); <-done }()
		<-r.Running()
		if _, err := r.Rebuild(ctx, documents.SnapshotsProjection); err != nil {
			t.Fatal(err)
		}
		live := projections.NewLive(store, everyTwo)
		deadline := time.Now().Add(20 * time.Second)
		for live.Refresh(ctx) == nil && live.Generation(documents.SnapshotsProjection).N != 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if g := live.Generation(documents.SnapshotsProjection); g.N != 2 {
			t.Fatalf("generation %d is live 20s after the rebuild; want 2", g.N)
		}
		if diff := cmp.Diff(want, readstoreDump(t, live)); diff != "" {
			t.Errorf("the rebuilt generation's snapshots differ from the first's (-want +got):\n%s", diff)
		}
	})
}

func readstoreDump(t *testing.T, f readstoretest.Finder) map[string]readstore.Doc {
	t.Helper()
	return readstoretest.Dump(t, f, snapshotModels, readstoretest.SortedKeys())
}
