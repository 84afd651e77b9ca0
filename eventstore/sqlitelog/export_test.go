package sqlitelog

import (
	"context"
	"database/sql"
	"testing"
)

// Rechain recomputes the hash of every event in the log at path from what it now holds, as a
// careful forger does after changing, adding or removing events: every chain then holds again.
func Rechain(t testing.TB, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT `+chainColumns+` FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	heads := map[string][]byte{}
	var todo []chainRow
	for rows.Next() {
		r, err := scanChainRow(rows)
		if err != nil {
			t.Fatal(err)
		}
		r.hash = r.compute(heads[r.stream])
		heads[r.stream] = r.hash
		todo = append(todo, r)
	}
	rows.Close()
	for _, r := range todo {
		if _, err := db.ExecContext(ctx, `UPDATE events SET hash = ? WHERE position = ?`, r.hash, int64(r.position)); err != nil {
			t.Fatal(err)
		}
	}
}
