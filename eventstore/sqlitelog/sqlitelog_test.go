package sqlitelog_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/eventstoretest"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		path := filepath.Join(t.TempDir(), "events.db")
		return func() (eventstore.Store, error) { return sqlitelog.Open(path, sqlitelog.Options{}) }
	})
}

func TestOpen(t *testing.T) {
	t.Run("refuses_a_second_writer_on_the_same_file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.db")
		l, err := sqlitelog.Open(path, sqlitelog.Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer l.Close()
		if second, err := sqlitelog.Open(path, sqlitelog.Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
			if second != nil {
				second.Close()
			}
			t.Fatalf("second open of the same file: err = %v, want it refused as in use", err)
		}
	})
}

// The stream index trails the log and catches up in batches; a tiny batch makes every contract
// test cross that boundary, including a reopen with part of the index unwritten.
func TestContractWithASmallIndexBatch(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		path := filepath.Join(t.TempDir(), "events.db")
		return func() (eventstore.Store, error) {
			return sqlitelog.Open(path, sqlitelog.Options{IndexBatch: 3, MaxBatchEvents: 5})
		}
	})
}
