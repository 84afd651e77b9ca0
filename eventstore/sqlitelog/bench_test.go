package sqlitelog_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

func benchEvent() eventstore.EventData {
	return eventstore.EventData{
		ID:   uuid.New(),
		Type: "learner.module_completed.v1",
		Data: []byte(`{"learnerId":"learner-0001","courseId":"course-0001","moduleId":"m001","at":"2026-11-25T20:00:00Z"}`),
		Metadata: eventstore.Metadata{
			CorrelationID: "0b6c3f4e-2d1a-4c1e-9a53-8f0f3a1d2b7c", CausationID: "0b6c3f4e-2d1a-4c1e-9a53-8f0f3a1d2b7c",
			UserID: "learner-0001", RequestID: "0b6c3f4e-2d1a-4c1e-9a53-8f0f3a1d2b7c",
		},
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend measures durable appends of one event each (every caller waits for its
// fsync) from one writer and from 64 concurrent writers; group commit makes the difference. The
// log is anchored as serve runs it (a key, an anchor a second), so the figures include the
// running hash of every event and the periodic anchors.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l, err := sqlitelog.Open(filepath.Join(b.TempDir(), "events.db"), sqlitelog.Options{Anchors: sqlitelog.AnchorOptions{Key: testAnchorKey}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism((writers + 1) / 2) // RunParallel starts parallelism*GOMAXPROCS goroutines
			if writers == 1 {
				b.SetParallelism(1)
			}
			b.ResetTimer()
			if writers == 1 {
				for i := 0; i < b.N; i++ {
					if _, err := l.Append(ctx, "learner-1", eventstore.Exact(uint64(i)), []eventstore.EventData{benchEvent()}); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					stream := fmt.Sprintf("learner-%d", next.Add(1))
					var v uint64
					for pb.Next() {
						if _, err := l.Append(ctx, stream, eventstore.Exact(v), []eventstore.EventData{benchEvent()}); err != nil {
							b.Error(err)
							return
						}
						v++
					}
				})
			}
			b.StopTimer()
			reportRate(b)
			commits, appends := l.Stats()
			b.ReportMetric(float64(appends)/float64(commits), "appends/commit")
		})
	}
}

// BenchmarkRawInsert is the ceiling: the same driver inserting the same rows into the same
// schema with prepared statements, 1,000 events per transaction, synchronous=FULL. With
// "with_index" it also writes each event's stream index row, as the log does (sorted, in the same
// transaction); "events_only" skips them.
func BenchmarkRawInsert(b *testing.B) {
	for _, withIndex := range []bool{false, true} {
		name := "events_only"
		if withIndex {
			name = "with_index"
		}
		b.Run(name, func(b *testing.B) { rawInsert(b, withIndex) })
	}
}

func rawInsert(b *testing.B, withIndex bool) {
	path := filepath.Join(b.TempDir(), "events.db")
	l, err := sqlitelog.Open(path, sqlitelog.Options{}) // creates the schema
	if err != nil {
		b.Fatal(err)
	}
	l.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-65536)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	stmt, err := db.Prepare(`INSERT INTO events (position, event_id, stream, version, type, data,
		recorded_at, correlation_id, causation_id, user_id, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	index, err := db.Prepare(`INSERT INTO streams (stream, version, position) VALUES (?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer index.Close()
	type row struct {
		stream      string
		version, at int
	}
	rows := make([]row, 0, 1000)
	b.ResetTimer()
	for done := 0; done < b.N; {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		st := tx.Stmt(stmt)
		rows = rows[:0]
		for j := 0; j < 1000 && done < b.N; j++ {
			e := benchEvent()
			m := e.Metadata
			r := row{fmt.Sprintf("learner-%d", done%64), done/64 + 1, done + 1}
			if _, err := st.Exec(r.at, e.ID[:], r.stream, r.version, e.Type, e.Data,
				time.Now().UnixNano(), m.CorrelationID, m.CausationID, m.UserID, m.RequestID); err != nil {
				b.Fatal(err)
			}
			rows = append(rows, r)
			done++
		}
		if withIndex {
			slices.SortFunc(rows, func(a, b row) int {
				if c := strings.Compare(a.stream, b.stream); c != 0 {
					return c
				}
				return a.version - b.version
			})
			ix := tx.Stmt(index)
			for _, r := range rows {
				if _, err := ix.Exec(r.stream, r.version, r.at); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkRead measures the reads on the command and projection paths: a 50-event stream read
// from the stream index ("stream_indexed") and from the in-memory tail ("stream_tail"), as the
// repository reads an aggregate, and 50 events of the log read by position ("all"), as a
// subscription does.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "events.db")
	l, err := sqlitelog.Open(path, sqlitelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for v := range 50 {
		if _, err := l.Append(ctx, "learner-1", eventstore.Exact(uint64(v)), []eventstore.EventData{benchEvent()}); err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B, l *sqlitelog.Log, name string, f func() ([]eventstore.RecordedEvent, error)) {
		b.Run(name, func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				events, err := f()
				if err != nil {
					b.Fatal(err)
				}
				if len(events) != 50 {
					b.Fatalf("read %d events, want 50", len(events))
				}
			}
			reportCPU(b, start)
		})
	}
	read(b, l, "stream_tail", func() ([]eventstore.RecordedEvent, error) { return l.ReadStream(ctx, "learner-1", 1, 0) })
	if err := l.Close(); err != nil { // a clean close writes the tail into the stream index
		b.Fatal(err)
	}
	if l, err = sqlitelog.Open(path, sqlitelog.Options{}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	read(b, l, "stream_indexed", func() ([]eventstore.RecordedEvent, error) { return l.ReadStream(ctx, "learner-1", 1, 0) })
	read(b, l, "all", func() ([]eventstore.RecordedEvent, error) { return l.ReadAll(ctx, 0, 50) })
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

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
