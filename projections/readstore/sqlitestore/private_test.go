package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

// The read models hold names, emails and progress: the store's files are its owner's alone,
// whatever the umask, and also when an older version left them readable by others.
func TestTheStoresFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "read.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Commit(context.Background(), "learners", 1, []readstore.Write{{Coll: "dashboards",
		Doc: readstore.Doc{ID: "ada", Position: 1, Body: []byte(`{"name":"Ada"}`)}}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"read.db", "read.db-wal", "read.db-shm"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, mode)
		}
	}
}
