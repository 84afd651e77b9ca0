package readstoretest_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
)

// colls is a Finder over fixed collections.
type colls map[string][]readstore.Doc

func (c colls) Find(_ context.Context, q readstore.Query) ([]readstore.Doc, error) {
	return c[q.Coll], nil
}

func TestDump(t *testing.T) {
	store := colls{
		"catalog":       {{ID: "go", Position: 3, Body: json.RawMessage(`{"title": "Go", "id": "go"}`)}},
		"dashboards":    {{ID: "ada", Position: 4, Body: json.RawMessage(`{"v":1}`)}},
		"dashboards_g2": {{ID: "ada", Position: 7, Body: json.RawMessage(`{"v":2}`)}},
	}
	t.Run("keeps_bodies_as_stored", func(t *testing.T) {
		want := map[string]readstore.Doc{
			"catalog/go":     store["catalog"][0],
			"dashboards/ada": store["dashboards"][0],
		}
		if diff := cmp.Diff(want, readstoretest.Dump(t, store, []string{"catalog", "dashboards", "rosters"})); diff != "" {
			t.Errorf("dump (-want +got):\n%s", diff)
		}
	})
	t.Run("sorts_the_keys_of_each_body", func(t *testing.T) {
		got := readstoretest.Dump(t, store, []string{"catalog"}, readstoretest.SortedKeys())
		if b := string(got["catalog/go"].Body); b != `{"id":"go","title":"Go"}` {
			t.Errorf("body = %s, want the keys sorted", b)
		}
	})
	t.Run("reads_a_collection_from_its_stored_name_under_its_plain_one", func(t *testing.T) {
		got := readstoretest.Dump(t, store, []string{"catalog", "dashboards"},
			readstoretest.StoredAs(map[string]string{"dashboards": "dashboards_g2"}))
		want := map[string]readstore.Doc{
			"catalog/go":     store["catalog"][0],
			"dashboards/ada": store["dashboards_g2"][0],
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dump (-want +got):\n%s", diff)
		}
	})
}
