package history_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
)

// BenchmarkAsOf answers asOf for a learner with 10,000 events: 20 courses of 499 modules, each
// enrolled in and completed.
//
// The machine is shared, so besides the wall time each case reports the CPU time this process
// spent answering (cpu-ms/op, from getrusage around the timed part), which other processes'
// load changes far less.
//
// cold is a fresh process for each question: the log and the read store opened anew and a new
// API, so nothing of the streams is decoded or in SQLite's page cache (the files stay in the
// operating system's cache). The opens are not timed. replay reads a read store without
// snapshots, as before they existed; snapshots one the snapshots projector wrote.
func BenchmarkAsOf(b *testing.B) {
	dir := b.TempDir()
	logPath := filepath.Join(dir, "events.db")
	log, err := sqlitelog.Open(logPath, sqlitelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	put := appender(b, log)
	at := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	var learnerEvents []domain.Event
	for c := range 20 {
		id := fmt.Sprintf("c%02d", c)
		evs := []domain.Event{course.Created{CourseID: id, Title: "Course " + id, Category: "x", Level: course.LevelBeginner, InstructorID: "t", At: at}}
		for m := range 499 {
			evs = append(evs, course.ModuleAdded{CourseID: id, ModuleID: fmt.Sprintf("m%03d", m), Title: "M", At: at})
		}
		put(course.StreamPrefix+id, 0, append(evs, course.Published{CourseID: id, At: at})...)
		learnerEvents = append(learnerEvents, learner.Enrolled{LearnerID: "bob", CourseID: id, At: at})
		for m := range 499 {
			learnerEvents = append(learnerEvents, learner.ModuleCompleted{LearnerID: "bob", CourseID: id, ModuleID: fmt.Sprintf("m%03d", m), At: at})
		}
		learnerEvents = append(learnerEvents, learner.CourseCompleted{LearnerID: "bob", CourseID: id, At: at})
	}
	for i := 0; i < len(learnerEvents); i += 500 {
		put(learner.StreamPrefix+"bob", uint64(i), learnerEvents[i:min(i+500, len(learnerEvents))]...)
	}
	plain, snapped := filepath.Join(dir, "read.db"), filepath.Join(dir, "read-snapshots.db")
	openStore(b, plain).Close()
	store := openStore(b, snapped)
	projectSnapshots(b, log, store, projections.Snapshots{})
	store.Close()
	log.Close()
	asOf := time.Now().Add(time.Hour)

	for _, variant := range []struct{ name, store string }{{"replay", plain}, {"snapshots", snapped}} {
		b.Run("cold/"+variant.name, func(b *testing.B) {
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				log, err := sqlitelog.Open(logPath, sqlitelog.Options{})
				if err != nil {
					b.Fatal(err)
				}
				store := openStore(b, variant.store)
				runtime.GC() // a fresh process has no garbage of the opens to collect
				b.StartTimer()
				start := cpuTime(b)
				askAsOf(b, newAPI(b, log, store), asOf)
				cpu += cpuTime(b) - start
				b.StopTimer()
				store.Close()
				log.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
	// warm: one process asks again (an auditor stepping through dates).
	log, err = sqlitelog.Open(logPath, sqlitelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	for _, variant := range []struct{ name, store string }{{"replay", plain}, {"snapshots", snapped}} {
		b.Run("warm/"+variant.name, func(b *testing.B) {
			store := openStore(b, variant.store)
			defer store.Close()
			r := newAPI(b, log, store)
			askAsOf(b, r, asOf)
			b.ResetTimer()
			start := cpuTime(b)
			for range b.N {
				askAsOf(b, r, asOf)
			}
			b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
