// Package readstoretest is the contract every readstore.Store adapter meets. Collections and
// projections are named per test, so a suite can share a server with other data. Dump reads whole
// collections, for the tests that compare read models.
package readstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Run runs the contract. newStore returns a store for one test.
func Run(t *testing.T, newStore func(t *testing.T) readstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s readstore.Store, coll string)
	}{
		{"writes_and_reads_documents", writesAndReads},
		{"ignores_a_write_not_newer_than_the_stored_document", guardsByPosition},
		{"records_checkpoints_per_projection", checkpoints},
		{"writes_large_batches", largeBatches},
		{"filters_by_equal_fields_and_by_terms", filters},
		{"sorts_and_pages_with_a_cursor", sortsAndPages},
		{"finds_the_documents_changed_after_a_position", changedAfter},
		{"keeps_dead_letters", deadLetters},
		{"drops_a_generation_and_leaves_the_others", drops},
		{"grants_leases_and_fences_off_their_old_owners", leases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			coll := "c" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
			tc.fn(t, s, coll)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

type course struct {
	ID         string   `json:"id"`
	Title      string   `json:"title"`
	Category   string   `json:"category"`
	Published  bool     `json:"published"`
	Enrolled   int64    `json:"enrolled"`
	Words      []string `json:"words"`
	Nested     *nested  `json:"nested,omitempty"`
	PublishedN int64    `json:"publishedN"`
}

type nested struct {
	Modules []string `json:"modules"`
}

func doc(t *testing.T, pos uint64, c course) readstore.Doc {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return readstore.Doc{ID: c.ID, Position: pos, Body: b}
}

func decode(t *testing.T, d readstore.Doc) course {
	t.Helper()
	var c course
	if err := json.Unmarshal(d.Body, &c); err != nil {
		t.Fatalf("document %s holds invalid JSON %q: %v", d.ID, d.Body, err)
	}
	return c
}

func commit(t *testing.T, s readstore.Store, coll, projection string, checkpoint uint64, docs ...readstore.Doc) {
	t.Helper()
	writes := make([]readstore.Write, len(docs))
	for i, d := range docs {
		writes[i] = readstore.Write{Coll: coll, Doc: d}
	}
	if err := s.Commit(ctx(t), projection, checkpoint, writes); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func writesAndReads(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	a := course{ID: "a", Title: "Go for beginners", Category: "programming", Published: true, Enrolled: 3,
		Words: []string{"go", "for", "beginners"}, Nested: &nested{Modules: []string{"m1", "m2"}}}
	b := course{ID: "b", Title: "Ünïcode & \"quotes\"", Category: "languages"}
	commit(t, s, coll, coll+"-p", 5, doc(t, 4, a), doc(t, 5, b))
	got, err := s.Get(c, coll, "a")
	if err != nil {
		t.Fatalf("get a: %v", err)
	}
	if got.ID != "a" || got.Position != 4 {
		t.Errorf("get a = id %q position %d, want a at 4", got.ID, got.Position)
	}
	if diff := cmp.Diff(a, decode(t, got)); diff != "" {
		t.Errorf("document a changed on the way (-want +got):\n%s", diff)
	}
	if _, err := s.Get(c, coll, "missing"); !errors.Is(err, readstore.ErrNotFound) {
		t.Errorf("get a missing id: err = %v, want ErrNotFound", err)
	}
	many, err := s.GetMany(c, coll, []string{"b", "missing", "a"})
	if err != nil {
		t.Fatalf("get many: %v", err)
	}
	slices.SortFunc(many, func(x, y readstore.Doc) int { return strings.Compare(x.ID, y.ID) })
	if len(many) != 2 || many[0].ID != "a" || many[1].ID != "b" || decode(t, many[1]).Title != b.Title {
		t.Errorf("get many a, b and a missing id = %+v, want a and b", many)
	}
	if none, err := s.GetMany(c, coll, nil); err != nil || len(none) != 0 {
		t.Errorf("get many of no ids = %v, %v", none, err)
	}
}

func guardsByPosition(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	commit(t, s, coll, coll+"-p", 10, doc(t, 10, course{ID: "a", Title: "v10"}))
	commit(t, s, coll, coll+"-p", 10, doc(t, 9, course{ID: "a", Title: "v9"}), doc(t, 10, course{ID: "a", Title: "v10 again"}))
	got, _ := s.Get(c, coll, "a")
	if got.Position != 10 || decode(t, got).Title != "v10" {
		t.Errorf("after older and equal writes, a = %q at %d; want v10 at 10", decode(t, got).Title, got.Position)
	}
	commit(t, s, coll, coll+"-p", 11, doc(t, 11, course{ID: "a", Title: "v11"}))
	got, _ = s.Get(c, coll, "a")
	if got.Position != 11 || decode(t, got).Title != "v11" {
		t.Errorf("after a newer write, a = %q at %d; want v11 at 11", decode(t, got).Title, got.Position)
	}
}

func checkpoints(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	if cp, err := s.Checkpoint(c, coll+"-new"); err != nil || cp != 0 {
		t.Errorf("checkpoint of a projection never committed = %d, %v; want 0", cp, err)
	}
	commit(t, s, coll, coll+"-x", 42)
	commit(t, s, coll, coll+"-y", 7, doc(t, 7, course{ID: "a"}))
	commit(t, s, coll, coll+"-x", 43)
	for name, want := range map[string]uint64{coll + "-x": 43, coll + "-y": 7} {
		if cp, err := s.Checkpoint(c, name); err != nil || cp != want {
			t.Errorf("checkpoint of %s = %d, %v; want %d", name, cp, err, want)
		}
	}
}

func largeBatches(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	var docs []readstore.Doc
	for i := range 120 {
		docs = append(docs, doc(t, uint64(i+1), course{ID: fmt.Sprintf("d%03d", i), Enrolled: int64(i)}))
	}
	commit(t, s, coll, coll+"-p", 120, docs...)
	all, err := s.Find(c, readstore.Query{Coll: coll})
	if err != nil || len(all) != 120 {
		t.Fatalf("find all after a batch of 120 = %d documents, %v", len(all), err)
	}
	// Rewrite half of them, newer, in one batch with older copies of the others.
	docs = docs[:0]
	for i := range 120 {
		pos := uint64(i + 1)
		if i%2 == 0 {
			pos += 1000
		}
		docs = append(docs, doc(t, pos, course{ID: fmt.Sprintf("d%03d", i), Enrolled: int64(i) + 1000}))
	}
	commit(t, s, coll, coll+"-p", 1120, docs...)
	all, _ = s.Find(c, readstore.Query{Coll: coll, Sort: []readstore.Order{{Name: "enrolled"}}})
	changed := 0
	for _, d := range all {
		if decode(t, d).Enrolled >= 1000 {
			changed++
		}
	}
	if changed != 60 {
		t.Errorf("%d documents took the second batch, want the 60 with newer positions", changed)
	}
}

func seed(t *testing.T, s readstore.Store, coll string) []course {
	cs := []course{
		{ID: "c1", Title: "Intro to Go", Category: "programming", Published: true, Enrolled: 30, Words: []string{"intro", "to", "go"}, PublishedN: 100},
		{ID: "c2", Title: "Advanced Go", Category: "programming", Published: true, Enrolled: 50, Words: []string{"advanced", "go"}, PublishedN: 300},
		{ID: "c3", Title: "Go draft", Category: "programming", Published: false, Enrolled: 0, Words: []string{"go", "draft"}, PublishedN: 0},
		{ID: "c4", Title: "Painting", Category: "art", Published: true, Enrolled: 50, Words: []string{"painting"}, PublishedN: 200},
		{ID: "c5", Title: "Intro to painting", Category: "art", Published: true, Enrolled: 5, Words: []string{"intro", "to", "painting"}, PublishedN: 400},
	}
	var docs []readstore.Doc
	for i, c := range cs {
		docs = append(docs, doc(t, uint64(i+1), c))
	}
	commit(t, s, coll, coll+"-p", 5, docs...)
	return cs
}

func ids(docs []readstore.Doc) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out
}

func filters(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	seed(t, s, coll)
	if err := s.EnsureIndexes(c, []readstore.Index{{Coll: coll, Fields: []string{"published", "category"}}}); err != nil {
		t.Fatalf("ensure indexes: %v", err)
	}
	if err := s.EnsureIndexes(c, []readstore.Index{{Coll: coll, Fields: []string{"published", "category"}}}); err != nil {
		t.Fatalf("ensure the same indexes again: %v", err)
	}
	cases := []struct {
		name string
		q    readstore.Query
		want []string
	}{
		{"bool", readstore.Query{Eq: []readstore.Field{{Name: "published", Value: true}}}, []string{"c1", "c2", "c4", "c5"}},
		{"bool_and_string", readstore.Query{Eq: []readstore.Field{{Name: "published", Value: true}, {Name: "category", Value: "art"}}}, []string{"c4", "c5"}},
		{"integer", readstore.Query{Eq: []readstore.Field{{Name: "enrolled", Value: 50}}}, []string{"c2", "c4"}},
		{"one_term", readstore.Query{ContainsAll: []readstore.Terms{{Name: "words", Values: []string{"go"}}}}, []string{"c1", "c2", "c3"}},
		{"all_terms", readstore.Query{ContainsAll: []readstore.Terms{{Name: "words", Values: []string{"intro", "go"}}}}, []string{"c1"}},
		{"terms_and_field", readstore.Query{Eq: []readstore.Field{{Name: "published", Value: true}}, ContainsAll: []readstore.Terms{{Name: "words", Values: []string{"intro"}}}}, []string{"c1", "c5"}},
		{"nothing_matches", readstore.Query{Eq: []readstore.Field{{Name: "category", Value: "nope"}}}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Coll = coll
			got, err := s.Find(c, tc.q)
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			gotIDs := ids(got)
			slices.Sort(gotIDs)
			if diff := cmp.Diff(tc.want, gotIDs); diff != "" {
				t.Errorf("find (-want +got):\n%s", diff)
			}
		})
	}
}

func sortsAndPages(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	cs := seed(t, s, coll)
	cases := []struct {
		name  string
		order []readstore.Order
		want  []string
	}{
		{"by_integer_descending_then_id", []readstore.Order{{Name: "enrolled", Desc: true}}, []string{"c2", "c4", "c1", "c5", "c3"}},
		{"by_integer_ascending", []readstore.Order{{Name: "publishedN"}}, []string{"c3", "c1", "c4", "c2", "c5"}},
		{"by_string", []readstore.Order{{Name: "title"}}, []string{"c2", "c3", "c1", "c5", "c4"}},
		{"by_id_alone", nil, []string{"c1", "c2", "c3", "c4", "c5"}},
	}
	byID := map[string]course{}
	for _, x := range cs {
		byID[x.ID] = x
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			all, err := s.Find(c, readstore.Query{Coll: coll, Sort: tc.order})
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(all)); diff != "" {
				t.Errorf("sorted (-want +got):\n%s", diff)
			}
			// The same listing, two at a time through cursors.
			var paged []string
			var after *readstore.Cursor
			for range 10 {
				page, err := s.Find(c, readstore.Query{Coll: coll, Sort: tc.order, After: after, Limit: 2})
				if err != nil {
					t.Fatalf("find page: %v", err)
				}
				if len(page) > 2 {
					t.Fatalf("page of limit 2 has %d documents", len(page))
				}
				if len(page) == 0 {
					break
				}
				paged = append(paged, ids(page)...)
				last := byID[page[len(page)-1].ID]
				after = &readstore.Cursor{ID: last.ID}
				for _, o := range tc.order {
					switch o.Name {
					case "enrolled":
						after.Values = append(after.Values, last.Enrolled)
					case "publishedN":
						after.Values = append(after.Values, last.PublishedN)
					case "title":
						after.Values = append(after.Values, last.Title)
					}
				}
			}
			if diff := cmp.Diff(tc.want, paged); diff != "" {
				t.Errorf("paged two at a time (-want +got):\n%s", diff)
			}
		})
	}
	// Filters and cursors together.
	page, err := s.Find(c, readstore.Query{Coll: coll, Eq: []readstore.Field{{Name: "published", Value: true}},
		Sort: []readstore.Order{{Name: "enrolled", Desc: true}}, After: &readstore.Cursor{Values: []any{int64(50)}, ID: "c4"}, Limit: 10})
	if err != nil {
		t.Fatalf("find after a cursor with a filter: %v", err)
	}
	if diff := cmp.Diff([]string{"c1", "c5"}, ids(page)); diff != "" {
		t.Errorf("published after (50, c4) by enrolled descending (-want +got):\n%s", diff)
	}
}

// changedAfter: PositionAfter keeps the documents whose position is past it, as the latest
// write left them, together with the other conditions, sorts and limits.
func changedAfter(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	cs := seed(t, s, coll) // c1 to c5 at positions 1 to 5
	renamed := cs[1]
	renamed.Title = "Advanced Go, revised"
	commit(t, s, coll, coll+"-p", 9, doc(t, 9, renamed))
	cases := []struct {
		name string
		q    readstore.Query
		want []string
	}{
		{"none_is_every_document", readstore.Query{}, []string{"c1", "c2", "c3", "c4", "c5"}},
		{"after_a_position", readstore.Query{PositionAfter: 3}, []string{"c2", "c4", "c5"}},
		{"after_the_latest_write", readstore.Query{PositionAfter: 9}, []string{}},
		{"with_a_field", readstore.Query{PositionAfter: 1, Eq: []readstore.Field{{Name: "category", Value: "art"}}}, []string{"c4", "c5"}},
		{"sorted_and_limited", readstore.Query{PositionAfter: 2, Sort: []readstore.Order{{Name: "publishedN", Desc: true}}, Limit: 2}, []string{"c5", "c2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Coll = coll
			got, err := s.Find(c, tc.q)
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("find (-want +got):\n%s", diff)
			}
			for _, d := range got {
				if d.ID == "c2" && (d.Position != 9 || decode(t, d).Title != renamed.Title) {
					t.Errorf("c2 at %d %q, want the write at 9", d.Position, decode(t, d).Title)
				}
			}
		})
	}
}

func deadLetters(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := []readstore.DeadLetter{
		{Projection: coll, Position: 7, EventID: "e7", EventType: "x.v1", Error: "boom", At: at},
		{Projection: coll, Position: 9, EventID: "e9", EventType: "y.v1", Error: "bang", At: at.Add(time.Second)},
	}
	for _, d := range []readstore.DeadLetter{want[1], want[0], {Projection: coll + "-other", Position: 8, At: at}} {
		if err := s.AddDeadLetter(c, d); err != nil {
			t.Fatalf("add dead letter: %v", err)
		}
	}
	got, err := s.DeadLetters(c, coll)
	if err != nil {
		t.Fatalf("dead letters: %v", err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
}

func drops(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	other := coll + "_other"
	commit(t, s, coll, coll+"-old", 7, doc(t, 7, course{ID: "a", Title: "old", Category: "x"}))
	commit(t, s, other, coll+"-new", 8, doc(t, 8, course{ID: "a", Title: "new", Category: "x"}))
	if err := s.Drop(c, coll+"-old", []string{coll}); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if _, err := s.Get(c, coll, "a"); !errors.Is(err, readstore.ErrNotFound) {
		t.Errorf("get from a dropped collection: err = %v, want ErrNotFound", err)
	}
	if docs, err := s.Find(c, readstore.Query{Coll: coll, Eq: []readstore.Field{{Name: "category", Value: "x"}}}); err != nil || len(docs) != 0 {
		t.Errorf("find in a dropped collection = %v, %v; want nothing", docs, err)
	}
	if cp, err := s.Checkpoint(c, coll+"-old"); err != nil || cp != 0 {
		t.Errorf("checkpoint of a dropped projection = %d, %v; want 0", cp, err)
	}
	if got, err := s.Get(c, other, "a"); err != nil || decode(t, got).Title != "new" {
		t.Errorf("the other collection lost its document: %v", err)
	}
	if cp, _ := s.Checkpoint(c, coll+"-new"); cp != 8 {
		t.Errorf("the other projection's checkpoint = %d, want 8", cp)
	}
	// The name can be used again, from nothing.
	commit(t, s, coll, coll+"-old", 9, doc(t, 9, course{ID: "b", Title: "again"}))
	if got, err := s.Get(c, coll, "b"); err != nil || got.Position != 9 {
		t.Errorf("write after drop: %+v, %v", got, err)
	}
	if _, err := s.Get(c, coll, "a"); !errors.Is(err, readstore.ErrNotFound) {
		t.Errorf("a dropped document came back: err = %v", err)
	}
	if err := s.Drop(c, coll+"-never", []string{coll + "_never"}); err != nil {
		t.Errorf("dropping what does not exist: %v", err)
	}
}

func leases(t *testing.T, s readstore.Store, coll string) {
	c := ctx(t)
	name := coll + "-lease"
	a, err := s.AcquireLease(c, name, "a", 300*time.Millisecond)
	if err != nil || a.Owner != "a" || a.Token == 0 {
		t.Fatalf("first acquire = %+v, %v; want a's lease with a token", a, err)
	}
	again, err := s.AcquireLease(c, name, "a", 300*time.Millisecond)
	if err != nil || again.Token != a.Token || again.Expires.Before(a.Expires) {
		t.Errorf("renewal = %+v, %v; want the same token %d, expiring no earlier", again, err, a.Token)
	}
	if held, err := s.AcquireLease(c, name, "b", time.Second); !errors.Is(err, readstore.ErrLeaseHeld) || held.Owner != "a" {
		t.Errorf("acquire of a held lease = %+v, %v; want ErrLeaseHeld naming a", held, err)
	}
	underA := readstore.Fenced(s, readstore.Fence{Lease: name, Token: a.Token})
	if err := underA.Commit(c, coll+"-p", 1, []readstore.Write{{Coll: coll, Doc: doc(t, 1, course{ID: "x", Title: "by a"})}}); err != nil {
		t.Fatalf("commit by the owner: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // a's lease runs out
	b, err := s.AcquireLease(c, name, "b", time.Minute)
	if err != nil || b.Token <= a.Token {
		t.Fatalf("acquire after expiry = %+v, %v; want b's lease with a token above %d", b, err, a.Token)
	}
	// a, paused past its lease, wakes up and writes: every write is refused, and nothing changes.
	err = underA.Commit(c, coll+"-p", 2, []readstore.Write{{Coll: coll, Doc: doc(t, 2, course{ID: "x", Title: "late a"})}})
	if !errors.Is(err, readstore.ErrFenced) {
		t.Errorf("commit by the old owner: err = %v, want ErrFenced", err)
	}
	if got, _ := s.Get(c, coll, "x"); decode(t, got).Title != "by a" || got.Position != 1 {
		t.Errorf("after the fenced commit x = %q at %d; want a's first write", decode(t, got).Title, got.Position)
	}
	if cp, _ := s.Checkpoint(c, coll+"-p"); cp != 1 {
		t.Errorf("checkpoint after the fenced commit = %d, want 1", cp)
	}
	if err := underA.Drop(c, coll+"-p", []string{coll}); !errors.Is(err, readstore.ErrFenced) {
		t.Errorf("drop by the old owner: err = %v, want ErrFenced", err)
	}
	if _, err := s.Get(c, coll, "x"); err != nil {
		t.Errorf("the fenced drop removed the collection: %v", err)
	}
	dl := readstore.DeadLetter{Projection: coll + "-p", Position: 2, EventID: "e", EventType: "t", Error: "boom", At: time.Now().UTC()}
	if err := underA.AddDeadLetter(c, dl); !errors.Is(err, readstore.ErrFenced) {
		t.Errorf("dead letter by the old owner: err = %v, want ErrFenced", err)
	}
	underB := readstore.Fenced(s, readstore.Fence{Lease: name, Token: b.Token})
	if err := underB.Commit(c, coll+"-p", 2, []readstore.Write{{Coll: coll, Doc: doc(t, 2, course{ID: "x", Title: "by b"})}}); err != nil {
		t.Errorf("commit by the new owner: %v", err)
	}
	if _, err := s.AcquireLease(c, name, "a", time.Minute); !errors.Is(err, readstore.ErrLeaseHeld) {
		t.Errorf("the old owner took the lease back: %v", err)
	}
	if err := s.ReleaseLease(c, name, "b"); err != nil {
		t.Fatalf("release: %v", err)
	}
	a2, err := s.AcquireLease(c, name, "a", time.Minute)
	if err != nil || a2.Token <= b.Token {
		t.Errorf("acquire after release = %+v, %v; want a token above %d", a2, err, b.Token)
	}
	if err := underB.Commit(c, coll+"-p", 3, nil); !errors.Is(err, readstore.ErrFenced) {
		t.Errorf("commit by the owner who released: err = %v, want ErrFenced", err)
	}
}
