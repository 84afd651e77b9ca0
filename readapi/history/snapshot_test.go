package history_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/readapi/history"
)

// longHistory appends bob's long history, one commit at a time so that its events carry many
// recorded times: two courses that keep gaining modules while he works through them, a
// withdrawal and a return, disclosures and a certificate. It returns the recorded times of bob's
// and the courses' events, and among them those of the events just before, at and after a
// version that is a multiple of every.
func longHistory(t *testing.T, log *sqlitelog.Log, every uint64) (times, boundaries []time.Time) {
	t.Helper()
	put := appender(t, log)
	at := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	versions := map[string]uint64{}
	add := func(stream string, evs ...domain.Event) {
		put(stream, versions[stream], evs...)
		versions[stream] += uint64(len(evs))
	}
	bob := learner.StreamPrefix + "bob"
	for _, c := range []string{"go", "rust"} {
		add(course.StreamPrefix+c, course.Created{CourseID: c, Title: c, Category: "x", Level: course.LevelBeginner, InstructorID: "t", At: at})
		add(course.StreamPrefix+c, course.ModuleAdded{CourseID: c, ModuleID: c + "-0", Title: "M", At: at})
		add(course.StreamPrefix+c, course.Published{CourseID: c, At: at})
		add(bob, learner.Enrolled{LearnerID: "bob", CourseID: c, At: at})
	}
	for i := range 260 {
		for _, c := range []string{"go", "rust"} {
			m := fmt.Sprintf("%s-%d", c, i+1)
			add(course.StreamPrefix+c, course.ModuleAdded{CourseID: c, ModuleID: m, Title: "M", At: at})
			if c == "rust" && i%3 != 0 {
				continue
			}
			add(bob, learner.ModuleCompleted{LearnerID: "bob", CourseID: c, ModuleID: fmt.Sprintf("%s-%d", c, i), At: at})
		}
		switch i {
		case 40:
			add(bob, learner.Withdrawn{LearnerID: "bob", CourseID: "rust", At: at})
		case 90:
			add(bob, learner.Enrolled{LearnerID: "bob", CourseID: "rust", Resumed: true, At: at})
		case 150:
			add(course.StreamPrefix+"go", course.DetailsUpdated{CourseID: "go", Title: "Go, properly", Category: "x", Level: course.LevelAdvanced, At: at})
		}
		if i%25 == 0 {
			add(bob, learner.DisclosureRecorded{LearnerID: "bob", RecipientID: "ada", RecipientRole: "admin", Record: learner.RecordHistory, At: at})
		}
	}
	add(bob, learner.ModuleCompleted{LearnerID: "bob", CourseID: "go", ModuleID: "go-260", At: at},
		learner.CourseCompleted{LearnerID: "bob", CourseID: "go", At: at})
	add(bob, learner.CertificateIssued{LearnerID: "bob", CourseID: "go", CertificateID: "cert", At: at})
	add(course.StreamPrefix+"rust", course.Archived{CourseID: "rust", At: at})

	for _, s := range []string{bob, course.StreamPrefix + "go", course.StreamPrefix + "rust"} {
		evs, err := log.ReadStream(context.Background(), s, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			times = append(times, e.RecordedAt)
			if v := e.Version % every; v == 0 || v == 1 || v == every-1 {
				boundaries = append(boundaries, e.RecordedAt)
			}
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	return slices.CompactFunc(times, time.Time.Equal), boundaries
}

// countingLog counts the reads of whole streams, from their first event: the replays that
// start from no snapshot. asOf reads a learner's courses concurrently, hence the lock.
type countingLog struct {
	history.Log
	mu    sync.Mutex
	whole map[string]int // by stream
}

func (c *countingLog) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if from <= 1 {
		c.mu.Lock()
		c.whole[stream]++
		c.mu.Unlock()
	}
	return c.Log.ReadStream(ctx, stream, from, limit)
}

// TestAsOfFromSnapshots: asOf answers byte for byte what a full replay answers, at every instant
// an event of the learner or the courses was recorded, a nanosecond before and after, before
// all of them and after all of them, whether a snapshot lies before that instant or not.
func TestAsOfFromSnapshots(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "events.db")
	log, err := sqlitelog.Open(logPath, sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const every = 50
	times, boundaries := longHistory(t, log, every)
	plain := openStore(t, filepath.Join(dir, "read.db"))
	defer plain.Close()
	snapped := openStore(t, filepath.Join(dir, "snapshots.db"))
	defer snapped.Close()
	projectSnapshots(t, log, snapped, projections.Snapshots{Every: every})

	// Every instant around a snapshot's event, and a sample of the others: the race detector
	// makes each question slow.
	var sample []time.Time
	for i := 0; i < len(times); i += len(times) / 25 {
		sample = append(sample, times[i])
	}
	instants := slices.Concat([]time.Time{times[0].Add(-time.Hour), times[len(times)-1].Add(time.Hour)}, sample)
	for _, at := range slices.Concat(boundaries, times[len(times)-3:]) {
		instants = append(instants, at.Add(-time.Nanosecond), at, at.Add(time.Nanosecond))
	}
	slices.SortFunc(instants[2:], time.Time.Compare)
	instants = slices.CompactFunc(instants, time.Time.Equal)
	compare := func(t *testing.T, log history.Log) (answers map[time.Time]string, whole map[string]int) {
		t.Helper()
		answers = map[time.Time]string{}
		replayed := newAPI(t, log, plain) // one process, as an auditor stepping through dates
		stepping := newAPI(t, log, snapped)
		counting := &countingLog{Log: log, whole: map[string]int{}}
		for _, at := range instants {
			want, wantTag := askAsOf(t, replayed, at)
			got, gotTag := askAsOf(t, newAPI(t, counting, snapped), at) // a fresh process each time
			if got != want || gotTag != wantTag {
				t.Fatalf("asOf %s from snapshots:\n%s %s\nfrom a full replay:\n%s %s", at.Format(time.RFC3339Nano), gotTag, got, wantTag, want)
			}
			// One process keeps the snapshot it started from, and serves later instants from it.
			if got, gotTag := askAsOf(t, stepping, at); got != want || gotTag != wantTag {
				t.Fatalf("asOf %s from a kept snapshot:\n%s %s\nfrom a full replay:\n%s %s", at.Format(time.RFC3339Nano), gotTag, got, wantTag, want)
			}
			answers[at] = got
		}
		return answers, counting.whole
	}
	before, whole := compare(t, log)
	// bob has about 390 events and the courses about 265: snapshots every 50 events, so most
	// questions start from one.
	for _, s := range []string{learner.StreamPrefix + "bob", course.StreamPrefix + "go"} {
		if whole[s] > len(instants)/4 {
			t.Errorf("%s was replayed whole for %d of %d questions; want most to start from a snapshot", s, whole[s], len(instants))
		}
	}

	t.Run("a rewritten event with its chain recomputed is answered as the log now holds it", func(t *testing.T) {
		if err := log.Close(); err != nil {
			t.Fatal(err)
		}
		rewriteEvent(t, logPath, learner.StreamPrefix+"bob", 30)
		log, err := sqlitelog.Open(logPath, sqlitelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		after, whole := compare(t, log)
		last := instants[1]
		if after[last] == before[last] {
			t.Errorf("the rewritten event changed nothing asOf answers; the test proves nothing")
		}
		// bob's snapshots all follow version 30, so none matches the log now; the courses' do.
		if n := whole[learner.StreamPrefix+"bob"]; n != len(instants) {
			t.Errorf("bob's stream was replayed whole for %d of %d questions; want all, his snapshots are of the events before the rewrite", n, len(instants))
		}
		if n := whole[course.StreamPrefix+"go"]; n > len(instants)/4 {
			t.Errorf("a course was replayed whole for %d of %d questions; its snapshots still match the log", n, len(instants))
		}
	})
}

// rewriteEvent changes the module of the event at version of stream, and gives it and every
// later event of the stream a new hash, as someone recomputing the chain would.
func rewriteEvent(t *testing.T, path, stream string, version int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE events SET data = replace(CAST(data AS TEXT), '"moduleId":"', '"moduleId":"forged-')
		WHERE stream = ? AND version = ?`, stream, version)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rewrote %d events, want 1", n)
	}
	rows, err := db.Query(`SELECT position FROM events WHERE stream = ? AND version >= ?`, stream, version)
	if err != nil {
		t.Fatal(err)
	}
	var positions []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, p)
	}
	rows.Close()
	for _, p := range positions {
		h := sha256.Sum256(fmt.Appendf(nil, "forged %d", p))
		if _, err := db.Exec(`UPDATE events SET hash = ? WHERE position = ?`, h[:], p); err != nil {
			t.Fatal(err)
		}
	}
}
