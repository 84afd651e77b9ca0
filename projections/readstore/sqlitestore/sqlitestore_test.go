package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

func TestContract(t *testing.T) {
	readstoretest.Run(t, func(t *testing.T) readstore.Store {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
