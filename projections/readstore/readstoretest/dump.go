package readstoretest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Finder finds documents: a readstore.Store, or a view over one such as the projections' live
// generations.
type Finder interface {
	Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error)
}

// DumpOption changes what Dump reads or how it keeps the documents.
type DumpOption func(*dumpOptions)

type dumpOptions struct {
	sortKeys bool
	stored   map[string]string
}

// SortedKeys re-encodes each body with its object keys sorted, so that bodies holding the same
// JSON compare equal however their writer ordered the keys. A body that is not JSON fails the
// test.
func SortedKeys() DumpOption { return func(o *dumpOptions) { o.sortKeys = true } }

// StoredAs reads each collection of Dump's colls from the name stored gives it, where it gives
// one (such as "catalog_g2", a later generation of "catalog"), while the dump's keys keep the
// name from colls: two stores whose live generations differ then compare document by document.
func StoredAs(stored map[string]string) DumpOption {
	return func(o *dumpOptions) { o.stored = stored }
}

// Dump returns every document of the collections colls that f finds, keyed "coll/id", for a test
// that compares read models whole: with a build from scratch, or with themselves after events
// were applied again.
func Dump(t testing.TB, f Finder, colls []string, opts ...DumpOption) map[string]readstore.Doc {
	t.Helper()
	var o dumpOptions
	for _, opt := range opts {
		opt(&o)
	}
	out := map[string]readstore.Doc{}
	for _, coll := range colls {
		from := coll
		if s, ok := o.stored[coll]; ok {
			from = s
		}
		docs, err := f.Find(context.Background(), readstore.Query{Coll: from})
		if err != nil {
			t.Fatalf("find every document of %s: %v", from, err)
		}
		for _, d := range docs {
			if o.sortKeys {
				var v any
				if err := json.Unmarshal(d.Body, &v); err != nil {
					t.Fatalf("%s/%s: body is not JSON: %v: %s", from, d.ID, err, d.Body)
				}
				// Marshal writes the keys of a map in sorted order.
				if d.Body, err = json.Marshal(v); err != nil {
					t.Fatal(err)
				}
			}
			out[coll+"/"+d.ID] = d
		}
	}
	return out
}
