package sqlitelog_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// chainedLog writes three streams of five events, interleaved, across two opens of the log (so
// the second half chains to hashes read back from disk), and returns its path.
func chainedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	ctx := context.Background()
	for round := range 2 {
		l, err := sqlitelog.Open(path, sqlitelog.Options{IndexBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if round == 0 && i >= 3 || round == 1 && i < 3 {
				continue
			}
			for s := range 3 {
				ev := eventstore.EventData{ID: uuid.New(), Type: "test.happened.v1", Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
					Metadata: eventstore.Metadata{UserID: "u1", CausationID: "c"}}
				if _, err := l.Append(ctx, fmt.Sprintf("s-%d", s), eventstore.Exact(uint64(i)), []eventstore.EventData{ev}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// tamper changes the log's file behind the store's back.
func tamper(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("finds_every_chain_intact", func(t *testing.T) {
		rep, err := sqlitelog.Verify(ctx, chainedLog(t), sqlitelog.VerifyOptions{})
		if err != nil || rep.Failed() || rep.Events != 15 || rep.Streams != 3 {
			t.Fatalf("verify = %+v, %v; want 15 events in 3 streams and no problem", rep, err)
		}
	})
	cases := []struct {
		name     string
		tamper   string
		args     []any
		position uint64
		kind     sqlitelog.ProblemKind
	}{
		{"names_an_altered_event", `UPDATE events SET data = '{"n":99}' WHERE position = 8`, nil, 8, sqlitelog.Altered},
		{"names_altered_metadata", `UPDATE events SET user_id = 'mallory' WHERE position = 3`, nil, 3, sqlitelog.Altered},
		{"names_a_removed_event", `DELETE FROM events WHERE position = 5`, nil, 5, sqlitelog.Removed},
		{"names_the_removed_last_event", `DELETE FROM events WHERE position = 15`, nil, 15, sqlitelog.Removed},
		// Rehashing the altered event does not help: the next event of its stream no longer
		// chains to it.
		{"names_the_break_after_a_rehashed_event", `UPDATE events SET hash = zeroblob(32) WHERE position = 4`, nil, 4, sqlitelog.Altered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := chainedLog(t)
			tamper(t, path, tc.tamper, tc.args...)
			rep, err := sqlitelog.Verify(ctx, path, sqlitelog.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 || rep.Problems[0].Position != tc.position || rep.Problems[0].Kind != tc.kind {
				t.Fatalf("verify after %q = %+v; want a problem at position %d of kind %s", tc.tamper, rep.Problems, tc.position, tc.kind)
			}
		})
	}
	t.Run("catches_a_rewritten_hash_at_the_next_event", func(t *testing.T) {
		path := chainedLog(t)
		// Change position 4 (stream s-0, version 2) and give it a valid-looking new hash of its own.
		tamper(t, path, `UPDATE events SET data = '{"n":7}', hash = randomblob(32) WHERE position = 4`)
		rep, _ := sqlitelog.Verify(ctx, path, sqlitelog.VerifyOptions{})
		if len(rep.Problems) == 0 || rep.Problems[0].Position != 4 {
			t.Fatalf("verify = %+v, want the break at position 4", rep.Problems)
		}
	})
}
