package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testferret"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
)

// ferretURI is the one FerretDB the package's tests share, each in a database of its own.
var ferretURI string

func TestMain(m *testing.M) {
	srv, err := testferret.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferretURI = srv.URI()
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code != 0 {
		if logs := srv.Logs(); logs != "" {
			fmt.Fprintf(os.Stderr, "ferretdb logs:\n%s", logs)
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// testChunk stays under the 50 statements on which FerretDB hangs.
const testChunk = 16

func testOptions() Options {
	return Options{
		Database:  "t" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16],
		BulkChunk: testChunk,
		// FerretDB on SQLite is slow, and slower still under -race with tests in parallel.
		OpTimeout: 30 * time.Second,
	}
}

func newStore(t *testing.T) readstore.Store {
	return openStore(t, testOptions(), nil)
}

func openStore(t *testing.T, opts Options, monitor *event.CommandMonitor) *Store {
	t.Helper()
	co, err := clientOptions(ferretURI, opts)
	if err != nil {
		t.Fatalf("client options: %v", err)
	}
	if monitor != nil {
		co.SetMonitor(monitor)
	}
	s, err := open(testContext(t), co, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStore(t *testing.T) {
	readstoretest.Run(t, newStore)
}

func TestCommit(t *testing.T) {
	t.Run("splits_a_batch_of_120_writes_into_commands_of_16", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var updates []int
		monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if e.CommandName != "update" {
				return
			}
			stmts, _ := e.Command.Lookup("updates").Array().Values()
			mu.Lock()
			updates = append(updates, len(stmts))
			mu.Unlock()
		}}
		s := openStore(t, testOptions(), monitor)
		ctx := testContext(t)
		var writes []readstore.Write
		for i := range 120 {
			writes = append(writes, readstore.Write{Coll: "docs", Doc: body(t, fmt.Sprintf("d%03d", i), uint64(i+1), map[string]any{"n": i})})
		}
		if err := s.Commit(ctx, "p", 120, writes); err != nil {
			t.Fatalf("commit: %v", err)
		}
		mu.Lock()
		got := updates
		mu.Unlock()
		// Seven full chunks, the rest, then the checkpoint.
		want := []int{16, 16, 16, 16, 16, 16, 16, 8, 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("statements per update command (-want +got):\n%s", diff)
		}
		all, err := s.Find(ctx, readstore.Query{Coll: "docs"})
		if err != nil || len(all) != 120 {
			t.Errorf("find after the commit = %d documents, %v; want 120", len(all), err)
		}
	})

	t.Run("skips_a_document_whose_stored_position_is_newer_and_still_commits", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, testOptions(), nil)
		ctx := testContext(t)
		if err := s.Commit(ctx, "p", 10, []readstore.Write{
			{Coll: "docs", Doc: body(t, "a", 10, map[string]any{"v": "a10"})},
		}); err != nil {
			t.Fatalf("first commit: %v", err)
		}
		// Older and equal copies of a, next to new documents in the same chunk and a second
		// collection: the skips must not fail the commit nor stop the other writes.
		writes := []readstore.Write{
			{Coll: "docs", Doc: body(t, "a", 5, map[string]any{"v": "a5"})},
			{Coll: "docs", Doc: body(t, "b", 11, map[string]any{"v": "b11"})},
			{Coll: "docs", Doc: body(t, "a", 10, map[string]any{"v": "a10 again"})},
			{Coll: "others", Doc: body(t, "a", 12, map[string]any{"v": "other a12"})},
		}
		if err := s.Commit(ctx, "p", 12, writes); err != nil {
			t.Fatalf("commit with older writes: %v", err)
		}
		want := map[string]string{"docs/a": "a10", "docs/b": "b11", "others/a": "other a12"}
		for key, v := range want {
			coll, id, _ := strings.Cut(key, "/")
			d, err := s.Get(ctx, coll, id)
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			var got struct{ V string }
			if err := json.Unmarshal(d.Body, &got); err != nil || got.V != v {
				t.Errorf("%s = %s (%v), want v %q", key, d.Body, err, v)
			}
		}
		if cp, err := s.Checkpoint(ctx, "p"); err != nil || cp != 12 {
			t.Errorf("checkpoint = %d, %v; want 12", cp, err)
		}
	})

	t.Run("keeps_only_the_latest_of_one_id_within_a_batch", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, testOptions(), nil)
		ctx := testContext(t)
		writes := []readstore.Write{
			{Coll: "docs", Doc: body(t, "a", 3, map[string]any{"v": 3})},
			{Coll: "docs", Doc: body(t, "a", 7, map[string]any{"v": 7})},
			{Coll: "docs", Doc: body(t, "a", 5, map[string]any{"v": 5})},
		}
		if err := s.Commit(ctx, "p", 7, writes); err != nil {
			t.Fatalf("commit: %v", err)
		}
		d, err := s.Get(ctx, "docs", "a")
		if err != nil || d.Position != 7 || string(d.Body) != `{"v":7}` {
			t.Errorf("a = %d %s, %v; want position 7 body {\"v\":7}", d.Position, d.Body, err)
		}
	})

	t.Run("rejects_a_body_that_is_not_an_object_or_uses_a_reserved_field", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, testOptions(), nil)
		ctx := testContext(t)
		for _, b := range []string{`[1]`, `{"a":`, `{"_id":"x"}`, `{"_pos":1}`} {
			err := s.Commit(ctx, "p", 1, []readstore.Write{{Coll: "docs", Doc: readstore.Doc{ID: "a", Position: 1, Body: json.RawMessage(b)}}})
			if err == nil {
				t.Errorf("commit of body %s succeeded, want an error", b)
			}
		}
		if cp, _ := s.Checkpoint(ctx, "p"); cp != 0 {
			t.Errorf("checkpoint after failed commits = %d, want 0", cp)
		}
	})
}

func TestFind(t *testing.T) {
	t.Parallel()
	s := openStore(t, testOptions(), nil)
	ctx := testContext(t)
	var writes []readstore.Write
	for i, n := range []int{30, 50, 50, 10} {
		writes = append(writes, readstore.Write{Coll: "docs", Doc: body(t, fmt.Sprintf("c%d", i+1), uint64(i+1), map[string]any{"n": n, "tag": []string{"x"}})})
	}
	if err := s.Commit(ctx, "p", 4, writes); err != nil {
		t.Fatalf("commit: %v", err)
	}
	t.Run("takes_cursor_values_decoded_from_json_as_float64", func(t *testing.T) {
		got, err := s.Find(ctx, readstore.Query{Coll: "docs", Sort: []readstore.Order{{Name: "n", Desc: true}},
			After: &readstore.Cursor{Values: []any{float64(50)}, ID: "c2"}})
		if err != nil {
			t.Fatalf("find: %v", err)
		}
		if diff := cmp.Diff([]string{"c3", "c1", "c4"}, docIDs(got)); diff != "" {
			t.Errorf("after (50, c2) by n descending (-want +got):\n%s", diff)
		}
	})
	t.Run("joins_conditions_on_one_field", func(t *testing.T) {
		got, err := s.Find(ctx, readstore.Query{Coll: "docs",
			Eq:          []readstore.Field{{Name: "n", Value: 50}, {Name: "n", Value: int32(50)}},
			ContainsAll: []readstore.Terms{{Name: "tag", Values: []string{"x"}}}})
		if err != nil {
			t.Fatalf("find: %v", err)
		}
		if diff := cmp.Diff([]string{"c2", "c3"}, docIDs(got)); diff != "" {
			t.Errorf("n = 50 twice (-want +got):\n%s", diff)
		}
	})
	t.Run("rejects_a_cursor_that_does_not_match_the_sort", func(t *testing.T) {
		_, err := s.Find(ctx, readstore.Query{Coll: "docs", Sort: []readstore.Order{{Name: "n"}},
			After: &readstore.Cursor{Values: []any{1, 2}, ID: "c1"}})
		if err == nil {
			t.Error("find with two cursor values for one sort field succeeded, want an error")
		}
	})
}

func TestGet(t *testing.T) {
	t.Parallel()
	s := openStore(t, testOptions(), nil)
	_, err := s.Get(testContext(t), "never_written", "a")
	if !errors.Is(err, readstore.ErrNotFound) {
		t.Errorf("get from a collection that does not exist: err = %v, want ErrNotFound", err)
	}
}

func body(t *testing.T, id string, pos uint64, v any) readstore.Doc {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return readstore.Doc{ID: id, Position: pos, Body: b}
}

func docIDs(docs []readstore.Doc) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out
}

func TestBodyConversion(t *testing.T) {
	t.Run("stores_integers_as_int64_and_keeps_order_and_nesting", func(t *testing.T) {
		got, err := bodyToBSON([]byte(`{"z":1,"a":-9007199254740993,"f":1.5,"e":1e3,"big":18446744073709551616,` +
			`"s":"Ünïcode ✓","b":true,"n":null,"arr":[1,"x",[false],{"k":2}],"obj":{"y":{"x":[]},"w":{}}}`))
		if err != nil {
			t.Fatal(err)
		}
		want := bson.D{
			{Key: "z", Value: int64(1)},
			{Key: "a", Value: int64(-9007199254740993)},
			{Key: "f", Value: 1.5},
			{Key: "e", Value: 1000.0},
			{Key: "big", Value: 18446744073709551616.0},
			{Key: "s", Value: "Ünïcode ✓"},
			{Key: "b", Value: true},
			{Key: "n", Value: nil},
			{Key: "arr", Value: bson.A{int64(1), "x", bson.A{false}, bson.D{{Key: "k", Value: int64(2)}}}},
			{Key: "obj", Value: bson.D{{Key: "y", Value: bson.D{{Key: "x", Value: bson.A{}}}}, {Key: "w", Value: bson.D{}}}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("bson (-want +got):\n%s", diff)
		}
	})

	t.Run("round_trips_through_bson_to_the_same_json", func(t *testing.T) {
		bodies := []string{
			`{}`,
			`{"id":"a","n":42,"neg":-7,"max":9223372036854775807,"min":-9223372036854775808}`,
			`{"f":0.1,"g":-2.5e-8,"h":1.0e300}`,
			`{"s":"Ünïcode ✓ 日本語 🎓","esc":"quote \" backslash \\ nl \n tab \t ctl \u0001 html <a>&amp;","empty":""}`,
			`{"b":true,"c":false,"n":null}`,
			`{"arr":[1,2.5,"x",null,true,[[]],{"k":[{"deep":{"deeper":[1]}}]}],"empty":[]}`,
			`{"nested":{"modules":["m1","m2"],"count":2,"inner":{"z":"last","a":"first"}}}`,
		}
		for _, b := range bodies {
			d, err := bodyToBSON([]byte(b))
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			stored := append(bson.D{{Key: idField, Value: "id1"}, {Key: posField, Value: int64(17)}}, d...)
			raw, err := bson.Marshal(stored)
			if err != nil {
				t.Fatalf("%s: marshal: %v", b, err)
			}
			doc, err := docFromBSON(raw)
			if err != nil {
				t.Fatalf("%s: back to json: %v", b, err)
			}
			if doc.ID != "id1" || doc.Position != 17 {
				t.Errorf("%s: id %q position %d, want id1 at 17", b, doc.ID, doc.Position)
			}
			if diff := cmp.Diff(decodeJSON(t, []byte(b)), decodeJSON(t, doc.Body)); diff != "" {
				t.Errorf("%s came back as %s (-want +got):\n%s", b, doc.Body, diff)
			}
			// Field order survives, so the stored document reads as it was written.
			if strings.Contains(b, `"inner"`) && !strings.Contains(string(doc.Body), `{"z":"last","a":"first"}`) {
				t.Errorf("%s came back as %s, out of order", b, doc.Body)
			}
		}
	})

	t.Run("writes_bson_types_that_json_did_not_make", func(t *testing.T) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
		oid := bson.NewObjectID()
		raw, err := bson.Marshal(bson.D{{Key: idField, Value: "x"}, {Key: posField, Value: int32(3)},
			{Key: "i", Value: int32(-5)}, {Key: "at", Value: at}, {Key: "oid", Value: oid}})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := docFromBSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"i":-5,"at":"2026-01-02T03:04:05.006Z","oid":"%s"}`, oid.Hex())
		if doc.Position != 3 || string(doc.Body) != want {
			t.Errorf("got %d %s, want 3 %s", doc.Position, doc.Body, want)
		}
	})

	t.Run("rejects_what_is_not_one_json_object", func(t *testing.T) {
		for _, b := range []string{``, `null`, `[]`, `"s"`, `{"a":1} {}`, `{"a":}`, `{"_id":1}`, `{"_pos":1}`, `{"f":1e999}`} {
			if _, err := bodyToBSON([]byte(b)); err == nil {
				t.Errorf("body %q was accepted", b)
			}
		}
	})

	t.Run("keeps_the_last_of_a_repeated_key", func(t *testing.T) {
		got, err := bodyToBSON([]byte(`{"a":1,"b":2,"a":3}`))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(bson.D{{Key: "a", Value: int64(3)}, {Key: "b", Value: int64(2)}}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return normaliseNumbers(v)
}

// normaliseNumbers compares numbers by value: 1.0e300 and 1e+300 are one number.
func normaliseNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normaliseNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normaliseNumbers(x[k])
		}
	}
	return v
}

func TestScalar(t *testing.T) {
	cases := []struct {
		in   any
		want any
	}{
		{int(7), int64(7)}, {int32(-7), int64(-7)}, {uint64(7), int64(7)}, {float64(50), int64(50)},
		{float64(2.5), 2.5}, {json.Number("12"), int64(12)}, {"s", "s"}, {true, true}, {nil, nil},
	}
	for _, tc := range cases {
		got, err := scalar(tc.in)
		if err != nil || !cmp.Equal(tc.want, got) {
			t.Errorf("scalar(%T %v) = %T %v, %v; want %T %v", tc.in, tc.in, got, got, err, tc.want, tc.want)
		}
	}
	for _, bad := range []any{uint64(math.MaxUint64), math.NaN(), struct{}{}, []string{"x"}} {
		if _, err := scalar(bad); err == nil {
			t.Errorf("scalar(%T %v) succeeded, want an error", bad, bad)
		}
	}
}

func TestClientOptions(t *testing.T) {
	t.Run("defaults_to_majority_writes_and_primary_reads", func(t *testing.T) {
		co, err := clientOptions("mongodb://db.example:27017/", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if co.WriteConcern.W != writeconcern.WCMajority || co.WriteConcern.Journal == nil || !*co.WriteConcern.Journal {
			t.Errorf("write concern = %+v, want majority journaled", co.WriteConcern)
		}
		if co.ReadConcern.Level != "majority" || co.ReadPreference.Mode() != readpref.PrimaryMode {
			t.Errorf("read concern %v, read preference %v; want majority, primary", co.ReadConcern.Level, co.ReadPreference.Mode())
		}
		if *co.MaxPoolSize != 100 || *co.MinPoolSize != 0 || *co.ConnectTimeout != 5*time.Second || *co.ServerSelectionTimeout != 5*time.Second {
			t.Errorf("pool %d..%d, timeouts %v %v; want 0..100, 5s 5s", *co.MinPoolSize, *co.MaxPoolSize, *co.ConnectTimeout, *co.ServerSelectionTimeout)
		}
	})
	t.Run("lets_the_uri_override_defaults_and_options_override_the_uri", func(t *testing.T) {
		co, err := clientOptions("mongodb://db.example/?maxPoolSize=7&readPreference=nearest&connectTimeoutMS=1000",
			Options{ReadPreference: "secondaryPreferred"})
		if err != nil {
			t.Fatal(err)
		}
		if *co.MaxPoolSize != 7 || *co.ConnectTimeout != time.Second || co.ReadPreference.Mode() != readpref.SecondaryPreferredMode {
			t.Errorf("pool %d, connect %v, read preference %v; want 7, 1s, secondaryPreferred", *co.MaxPoolSize, *co.ConnectTimeout, co.ReadPreference.Mode())
		}
	})
	t.Run("rejects_bad_options", func(t *testing.T) {
		for name, o := range map[string]Options{
			"read preference":  {ReadPreference: "secondary-ish"},
			"negative chunk":   {BulkChunk: -1},
			"min above max":    {MinPoolSize: 10, MaxPoolSize: 5},
			"negative timeout": {OpTimeout: -time.Second},
		} {
			if _, err := clientOptions("mongodb://db.example/", o); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if _, err := clientOptions("not a uri", Options{}); err == nil {
			t.Error("a bad uri was accepted")
		}
	})
}
