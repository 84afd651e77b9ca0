package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t *testing.T, s *Store, pos uint64, id, body string) {
	t.Helper()
	if err := s.Commit(context.Background(), "learners", pos, []readstore.Write{{Coll: "dashboards",
		Doc: readstore.Doc{ID: id, Position: pos, Body: []byte(body)}}}); err != nil {
		t.Fatalf("commit at %d: %v", pos, err)
	}
}

func wantDoc(t *testing.T, s *Store, id string, pos uint64, body string) {
	t.Helper()
	d, err := s.Get(context.Background(), "dashboards", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	if d.Position != pos || string(d.Body) != body {
		t.Fatalf("get %s = %d %s, want %d %s", id, d.Position, d.Body, pos, body)
	}
}

func closed(st *sql.Stmt) bool {
	_, err := st.Exec()
	return err != nil && strings.Contains(err.Error(), "statement is closed")
}

func TestCommitsPreparedStatements(t *testing.T) {
	ctx := context.Background()
	t.Run("writes_into_a_collection_dropped_and_created_again", func(t *testing.T) {
		s := open(t)
		commit(t, s, 1, "ada", `{"v":1}`)
		commit(t, s, 2, "ada", `{"v":2}`) // through the upsert prepared for the table
		old := s.inserts["dashboards"]
		if old == nil {
			t.Fatal("the second commit left no prepared upsert for the collection")
		}
		if err := s.Drop(ctx, "learners", []string{"dashboards"}); err != nil {
			t.Fatal(err)
		}
		if s.inserts["dashboards"] != nil || !closed(old) {
			t.Fatal("Drop kept the dropped table's upsert")
		}
		commit(t, s, 1, "ada", `{"v":"rebuilt"}`) // a lower position: the old row is gone
		commit(t, s, 2, "bob", `{"v":"rebuilt"}`)
		wantDoc(t, s, "ada", 1, `{"v":"rebuilt"}`)
		wantDoc(t, s, "bob", 2, `{"v":"rebuilt"}`)
		if cp, err := s.Checkpoint(ctx, "learners"); err != nil || cp != 2 {
			t.Fatalf("checkpoint = %d, %v; want 2", cp, err)
		}
	})
	t.Run("survives_its_table_dropped_and_created_again_behind_it", func(t *testing.T) {
		s := open(t)
		commit(t, s, 1, "ada", `{"v":1}`)
		commit(t, s, 2, "ada", `{"v":2}`)
		stale := s.inserts["dashboards"]
		if _, err := s.wdb.ExecContext(ctx, `DROP TABLE "docs_dashboards"`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.wdb.ExecContext(ctx, `CREATE TABLE "docs_dashboards" (
			id TEXT PRIMARY KEY, position INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID`); err != nil {
			t.Fatal(err)
		}
		commit(t, s, 1, "ada", `{"v":"again"}`)
		if s.inserts["dashboards"] != stale {
			t.Fatal("the commit did not use the statement prepared before the drop")
		}
		wantDoc(t, s, "ada", 1, `{"v":"again"}`)
	})
	t.Run("are_closed_by_Close", func(t *testing.T) {
		s := open(t)
		commit(t, s, 1, "ada", `{"v":1}`)
		commit(t, s, 2, "ada", `{"v":2}`)
		wantDoc(t, s, "ada", 2, `{"v":2}`)
		all := []*sql.Stmt{s.checkpoint, s.fence, s.inserts["dashboards"]}
		s.stmts.Range(func(_, st any) bool { all = append(all, st.(*sql.Stmt)); return true })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for i, st := range all {
			if st == nil || !closed(st) {
				t.Errorf("statement %d is still open after Close", i)
			}
		}
	})
	t.Run("checks_the_fence_through_the_prepared_query", func(t *testing.T) {
		s := open(t)
		l, err := s.AcquireLease(ctx, "learners", "a", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		fenced := readstore.WithFence(ctx, readstore.Fence{Lease: l.Name, Token: l.Token + 1})
		err = s.Commit(fenced, "learners", 1, []readstore.Write{{Coll: "dashboards", Doc: readstore.Doc{ID: "ada", Position: 1, Body: []byte(`{}`)}}})
		if !errors.Is(err, readstore.ErrFenced) {
			t.Fatalf("commit with a stale token: err = %v, want ErrFenced", err)
		}
		if err := s.Commit(readstore.WithFence(ctx, readstore.Fence{Lease: l.Name, Token: l.Token}), "learners", 1, nil); err != nil {
			t.Fatalf("commit with the lease's token: %v", err)
		}
	})
}
