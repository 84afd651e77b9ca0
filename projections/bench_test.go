package projections_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

// benchLog fills an event log with a school's history: instructors and courses, then learners
// who enroll and complete modules, their appends interleaved as concurrent learners' would be.
func benchLog(b *testing.B, learners, courses, modules int) (*sqlitelog.Log, uint64) {
	b.Helper()
	l, err := sqlitelog.Open(filepath.Join(b.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	codec, err := commands.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	appendAll := func(stream string, expected eventstore.ExpectedVersion, evs ...domain.Event) {
		data := make([]eventstore.EventData, len(evs))
		for i, e := range evs {
			typ, body, err := codec.Encode(e)
			if err != nil {
				b.Fatal(err)
			}
			data[i] = eventstore.EventData{ID: uuid.New(), Type: typ, Data: body, Metadata: eventstore.Metadata{UserID: "seed"}}
		}
		if _, err := l.Append(ctx, stream, expected, data); err != nil {
			b.Fatal(err)
		}
	}
	appendAll("user-teacher", eventstore.NoStream, user.Registered{UserID: "teacher", Name: "Teacher", Email: "t@example.com", Role: domain.Instructor, At: at})
	for c := range courses {
		id := fmt.Sprintf("c%03d", c)
		evs := []domain.Event{course.Created{CourseID: id, Title: fmt.Sprintf("Course number %d", c), Category: "cat", Level: course.LevelBeginner, InstructorID: "teacher", At: at}}
		for m := range modules {
			evs = append(evs, course.ModuleAdded{CourseID: id, ModuleID: fmt.Sprintf("m%02d", m), Title: "Module", At: at})
		}
		appendAll("course-"+id, eventstore.NoStream, append(evs, course.Published{CourseID: id, At: at})...)
	}
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < learners; i += workers {
				id := fmt.Sprintf("l%05d", i)
				appendAll("user-"+id, eventstore.NoStream, user.Registered{UserID: id, Name: "Learner " + id, Email: id + "@example.com", Role: domain.Learner, At: at})
				cid := fmt.Sprintf("c%03d", i%courses)
				appendAll("learner-"+id, eventstore.NoStream, learner.Enrolled{LearnerID: id, CourseID: cid, At: at})
				version := uint64(1)
				for m := range modules {
					evs := []domain.Event{learner.ModuleCompleted{LearnerID: id, CourseID: cid, ModuleID: fmt.Sprintf("m%02d", m), At: at}}
					if m == modules-1 {
						evs = append(evs, learner.CourseCompleted{LearnerID: id, CourseID: cid, At: at})
					}
					appendAll("learner-"+id, eventstore.Exact(version), evs...)
					version += uint64(len(evs))
				}
			}
		}()
	}
	wg.Wait()
	head, _ := l.Head(ctx)
	return l, head
}

// BenchmarkRebuild builds every read model from position 0 into a fresh embedded store, and
// beside it reads the same log raw, in batches of 1,000: the rebuild's ceiling.
func BenchmarkRebuild(b *testing.B) {
	l, head := benchLog(b, 4000, 40, 20)
	defer l.Close()
	codec, _ := commands.NewCodec()
	b.Run("read_log_raw", func(b *testing.B) {
		for range b.N {
			var after uint64
			for after < head {
				evs, err := l.ReadAll(context.Background(), after, 1000)
				if err != nil {
					b.Fatal(err)
				}
				after = evs[len(evs)-1].Position
			}
		}
		b.ReportMetric(float64(head)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// rebuild_all builds the read models clients read; with_snapshots adds the snapshots asOf
	// starts from, as serve runs them, to show what they cost.
	for _, v := range []struct {
		name       string
		projectors []projections.Projector
	}{
		{"rebuild_all", []projections.Projector{projections.Courses{}, projections.Learners{}}},
		{"rebuild_all_with_snapshots", []projections.Projector{projections.Courses{}, projections.Learners{}, projections.Snapshots{}}},
	} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				store, err := sqlitestore.Open(filepath.Join(b.TempDir(), "read.db"))
				if err != nil {
					b.Fatal(err)
				}
				positions := projections.NewPositions()
				r, err := projections.NewRunner(l, codec, store, cache.NewMemory(100_000), positions, prometheus.NewRegistry(),
					slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Options{}, v.projectors...)
				if err != nil {
					b.Fatal(err)
				}
				names := make([]string, len(v.projectors))
				for i, p := range v.projectors {
					names[i] = p.Name()
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				go func() { done <- r.Run(ctx) }()
				if err := positions.Wait(ctx, head, names...); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cancel()
				r.Close()
				<-done
				store.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(head)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
