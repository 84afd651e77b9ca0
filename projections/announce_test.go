package projections_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// announced records, in one sequence, the commits a store made and the batches a feed got, so
// a test can tell which commit each batch announces and what happened between them.
type announced struct {
	readstore.Store

	mu     sync.Mutex
	events []happened
	unread []string // documents announced before they could be read
	err    error    // what Publish returns
}

// happened is a commit (key set) or a publish (batch set).
type happened struct {
	key     string
	writes  []readstore.Write
	batch   changes.Batch
	publish bool
}

func (a *announced) Commit(ctx context.Context, key string, checkpoint uint64, writes []readstore.Write) error {
	err := a.Store.Commit(ctx, key, checkpoint, writes)
	if err == nil {
		a.mu.Lock()
		a.events = append(a.events, happened{key: key, writes: writes})
		a.mu.Unlock()
	}
	return err
}

// Publish records b, and whether each document it announces could be read at its position
// then: a change is announced only once a reader can read it.
func (a *announced) Publish(ctx context.Context, b changes.Batch) error {
	var unread []string
	for _, c := range b.Changes {
		if d, err := a.Store.Get(ctx, c.Coll, c.ID); err != nil || d.Position < c.Position {
			unread = append(unread, fmt.Sprintf("%s/%s at %d (read %d, %v)", c.Coll, c.ID, c.Position, d.Position, err))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, happened{batch: b, publish: true})
	a.unread = append(a.unread, unread...)
	return a.err
}

func (a *announced) Subscribe(context.Context) (<-chan changes.Batch, error) {
	panic("the runner only publishes")
}

func (a *announced) happened() []happened {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]happened(nil), a.events...)
}

// generationName is a collection's or a projection's name in a generation after the first.
var generationName = regexp.MustCompile(`^(.+)_g[0-9]+$`)

// plain is the name the read API knows a collection or projection by.
func plain(name string) string {
	if m := generationName.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return name
}

// announcement is the batch that should announce a live commit of writes: the documents of the
// collections the read API serves, by id or in listings, under their plain names, at their
// positions; never the projectors' own working collections.
func announcement(projection string, writes []readstore.Write, at time.Time) (changes.Batch, bool) {
	public := map[string]bool{documents.CourseDetails: true, documents.Stats: true, documents.Dashboards: true,
		documents.Catalog: true, documents.Rosters: true}
	b := changes.Batch{Projection: projection, CommittedAt: at}
	for _, w := range writes {
		if public[plain(w.Coll)] {
			b.Changes = append(b.Changes, changes.Change{Coll: plain(w.Coll), ID: w.Doc.ID, Position: w.Doc.Position})
		}
	}
	return b, len(b.Changes) > 0
}

// tally is what checkAnnounced saw of one projection.
type tally struct {
	resyncs   int // Resyncs published
	built     int // commits of a generation being built
	announced int // batches published of commits of a generation that was built here
}

// checkAnnounced checks the batches of projection against its commits: one per commit of the
// live generation that wrote documents served by id, in commit order, and none of a generation
// being built until the Resync of its switch, after which it is the live one.
func checkAnnounced(t *testing.T, events []happened, projection string, at time.Time) tally {
	t.Helper()
	var n tally
	live, building := projection, ""
	var want, got []changes.Batch
	for _, e := range events {
		switch {
		case e.publish && e.batch.Projection == projection:
			got = append(got, e.batch)
			if !e.batch.Resync {
				if live != projection {
					n.announced++
				}
				continue
			}
			want = append(want, e.batch) // what a Resync carries is checked by the tests
			n.resyncs++
			if building != "" {
				live, building = building, ""
			}
		case e.publish || plain(e.key) != projection:
		case e.key == live:
			if b, ok := announcement(projection, e.writes, at); ok {
				want = append(want, b)
			}
		default:
			building = e.key
			n.built++
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("batches of %s (-want, from its commits +published):\n%s", projection, diff)
	}
	return n
}

func TestCommitsAreAnnouncedOnTheChangeFeed(t *testing.T) {
	w := newWorld(t)
	schoolHistory(t, w.log, 40, 3, 2)
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	feed := &announced{Store: openStore(t)}
	rr := startRunner(t, w.log, feed, cache.NewMemory(1<<16), projections.Options{BatchSize: 7, Changes: feed,
		Now: func() time.Time { return at }}, projections.Courses{}, projections.Learners{})
	rr.waitHead(t, w.log, "courses", "learners")
	w.scenario() // after the start: the live generations commit it in many small batches
	rr.waitHead(t, w.log, "courses", "learners")
	rr.stop()

	events := feed.happened()
	t.Run("first_a_resync_of_each_projection_for_what_a_predecessor_may_not_have_announced", func(t *testing.T) {
		var first []changes.Batch
		for _, e := range events {
			if e.publish {
				first = append(first, e.batch)
			}
		}
		want := []changes.Batch{{Projection: "courses", Resync: true, CommittedAt: at}, {Projection: "learners", Resync: true, CommittedAt: at}}
		if len(first) < 2 || !cmp.Equal(want, first[:2], cmpopts.EquateEmpty()) {
			t.Errorf("first batches = %+v; want %+v", first[:min(2, len(first))], want)
		}
	})
	t.Run("each_commit_with_its_documents_served_by_id_in_commit_order", func(t *testing.T) {
		for _, p := range []string{"courses", "learners"} {
			if n := checkAnnounced(t, events, p, at); n.resyncs != 1 || n.built != 0 {
				t.Errorf("%s: %+v; want the start's Resync alone, and nothing built", p, n)
			}
		}
	})
	t.Run("only_once_a_reader_can_read_them", func(t *testing.T) {
		if len(feed.unread) > 0 {
			t.Errorf("announced before they could be read: %v", feed.unread)
		}
	})
	t.Run("the_documents_announced_last_are_those_in_the_store", func(t *testing.T) {
		last := map[string]uint64{}
		for _, e := range events {
			for _, c := range e.batch.Changes {
				last[c.Coll+"/"+c.ID] = c.Position
			}
		}
		for _, coll := range []string{documents.CourseDetails, documents.Stats, documents.Dashboards} {
			docs, err := feed.Find(context.Background(), readstore.Query{Coll: coll})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range docs {
				if key := coll + "/" + d.ID; last[key] != d.Position {
					t.Errorf("%s was announced last at %d; it is at %d in the store", key, last[key], d.Position)
				}
			}
		}
	})
}

func TestARebuildIsAnnouncedByItsSwitchAlone(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	head := schoolHistory(t, w.log, 60, 4, 2)
	store := openStore(t)
	build(t, w.log, store) // generation 1
	feed := &announced{Store: store}
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	log := &gatedLog{Log: w.log}
	rr := startRunner(t, log, feed, cache.NewMemory(1<<16), projections.Options{BatchSize: 50, Changes: feed,
		Now: func() time.Time { return at }, ProgressEvery: time.Hour, DropGrace: 50 * time.Millisecond},
		projections.Courses{}, projections.Learners{})
	rr.waitHead(t, w.log, "courses", "learners")
	log.hold(0, head) // the build waits at its first read while the live generation commits
	if _, err := rr.Rebuild(ctx, "courses"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the build waits at its first read", func() bool { return log.waiting() == 1 })
	rename := func(round int) {
		for i := range 4 {
			title := fmt.Sprintf("Course %d, round %d", i, round)
			if _, err := w.cmds.UpdateCourseDetails(ctx, w.meta(), commands.UpdateCourseDetails{ID: courseID(i), Patch: coursePatch(title)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rename(1) // committed by generation 1, live, while generation 2 builds
	rr.waitHead(t, w.log, "courses", "learners")
	log.release()
	waitFor(t, "generation 2 is live", func() bool { return rr.Live().Generation("courses").N == 2 })
	rename(2) // committed by generation 2, now live
	rr.waitHead(t, w.log, "courses", "learners")
	rr.stop()

	events := feed.happened()
	if n := checkAnnounced(t, events, "courses", at); n.resyncs != 2 || n.built == 0 || n.announced == 0 {
		t.Errorf("courses: %+v; want 2 Resyncs (the start's, the switch's), and generation 2 both built and announced once live", n)
	}
	if n := checkAnnounced(t, events, "learners", at); n.resyncs != 1 || n.built != 0 {
		t.Errorf("learners: %+v; want the start's Resync alone, and nothing built", n)
	}
}

func TestAFeedThatFailsFailsNoBatch(t *testing.T) {
	w := newWorld(t)
	head := schoolHistory(t, w.log, 20, 2, 2)
	feed := &announced{Store: openStore(t), err: errors.New("the feed is down")}
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	rr := startRunner(t, w.log, feed, cache.NewMemory(1<<16), projections.Options{BatchSize: 5, Changes: feed,
		Now: func() time.Time { return at }},
		projections.Courses{}, projections.Learners{})
	rr.waitHead(t, w.log, "courses", "learners")
	for _, p := range []string{"courses", "learners"} {
		if st := rr.settle(t, p); st.Position != head {
			t.Errorf("%s is at %d; want the head %d", p, st.Position, head)
		}
		if letters, err := feed.DeadLetters(context.Background(), p); err != nil || len(letters) != 0 {
			t.Errorf("%s has dead letters %v (%v); want none", p, letters, err)
		}
	}
	if n := checkAnnounced(t, feed.happened(), "learners", at); n.resyncs != 1 {
		t.Errorf("learners: %+v; want every batch offered to the feed all the same", n)
	}
}
