package sqlitelog_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// The log holds names, emails and education records: its files are its owner's alone, whatever
// the umask, and also when an older version left them readable by others.
func TestTheLogsFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	// As an older version left it: created with the usual umask's mode.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := sqlitelog.Open(path, sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(context.Background(), "learner-ada", eventstore.Any,
		[]eventstore.EventData{{ID: uuid.New(), Type: "learner.enrolled.v1", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"events.db", "events.db-wal", "events.db-shm", "events.db.lock"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, mode)
		}
	}
}
