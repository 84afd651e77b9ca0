package sqlitelog

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
)

// The statements prepared at Open are closed by Close, not left to the connections' end.
func TestCloseClosesThePreparedStatements(t *testing.T) {
	ctx := context.Background()
	l, err := Open(filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "learner-1", eventstore.Exact(0), []eventstore.EventData{{ID: uuid.New(), Type: "t", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadStream(ctx, "learner-1", 1, 0); err != nil {
		t.Fatal(err)
	}
	st := l.stmts
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	all := append([]*sql.Stmt{st.insert, st.version, st.position, st.hash, st.stream, st.all}, st.positions[:]...)
	for i, s := range all {
		if err := s.Close(); err != nil {
			t.Errorf("statement %d: close again: %v", i, err)
		}
		if _, err := s.ExecContext(ctx); err == nil || !strings.Contains(err.Error(), "statement is closed") {
			t.Errorf("statement %d after Close: err = %v, want it closed", i, err)
		}
	}
}

// Events in the tail are read by position through IN lists padded to a power of two: every
// length, and lengths over one list, come back whole, in order, once each.
func TestReadStreamFromTheTailAtEveryListLength(t *testing.T) {
	ctx := context.Background()
	l, err := Open(filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 600
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = eventstore.EventData{ID: uuid.New(), Type: "t", Data: []byte(`{}`)}
	}
	if _, err := l.Append(ctx, "learner-1", eventstore.Exact(0), events); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 3, 4, 5, 7, 8, 9, 100, 255, 256, 257, 511, 513, 599} {
		for _, from := range []uint64{1, n - uint64(limit) + 1} {
			got, err := l.ReadStream(ctx, "learner-1", from, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != limit {
				t.Fatalf("from %d limit %d: read %d events", from, limit, len(got))
			}
			for i, e := range got {
				if e.Version != from+uint64(i) || e.ID != events[e.Version-1].ID {
					t.Fatalf("from %d limit %d: event %d is version %d (%s)", from, limit, i, e.Version, e.ID)
				}
			}
		}
	}
}
