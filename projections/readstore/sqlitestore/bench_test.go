package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

// BenchmarkCommit measures one projection batch as the runner writes it: three documents in
// two collections and the checkpoint, in one transaction.
func BenchmarkCommit(b *testing.B) {
	s, err := sqlitestore.Open(filepath.Join(b.TempDir(), "read.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var pos uint64
	start := cpuTime()
	for b.Loop() {
		pos++
		id := fmt.Sprintf("learner-%d", pos%1000)
		body := []byte(fmt.Sprintf(`{"learnerId":%q,"completed":%d}`, id, pos))
		if err := s.Commit(ctx, "dashboard", pos, []readstore.Write{
			{Coll: "dashboards", Doc: readstore.Doc{ID: id, Position: pos, Body: body}},
			{Coll: "dashboards", Doc: readstore.Doc{ID: id + "-summary", Position: pos, Body: body}},
			{Coll: "progress", Doc: readstore.Doc{ID: id, Position: pos, Body: body}},
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used. On a busy shared machine the CPU an operation
// costs says more than the wall clock, which counts the time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
