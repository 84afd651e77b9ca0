package certificate_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/certificate"
)

// The environment that makes this test binary a worker process of TestAWorkerKilledMidJob.
const (
	workerDirEnv  = "EDUTRACK_TEST_CERTIFICATE_WORKER_DIR"
	workerModeEnv = "EDUTRACK_TEST_CERTIFICATE_WORKER_MODE" // "hang" after the command, or "work"
)

// A worker killed with SIGKILL after it recorded the certificate, before its job completed,
// leaves the job running in jobs.db. Another worker process rescues it, runs it again, and the
// learner still holds one certificate.
func TestAWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := &world{t: t}
	log, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.log = log
	if w.handler, err = commands.New(log, func() time.Time { return completedAt }, commands.Options{}); err != nil {
		t.Fatal(err)
	}
	w.completeTheCourse()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	queue, err := reactors.OpenQueue(context.Background(), filepath.Join(dir, "jobs.db"), reactors.QueueOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w.queue = queue
	reactor, err := reactors.NewReactor(log, queue, quiet, reactors.ReactorOptions{Owner: "test"}, certificate.OnCompleted)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reactor.Run(ctx) }()
	eventually(t, "the certificate job queued", func() bool { return w.job() != nil })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	queue.Close()
	log.Close() // the worker processes write the log

	hung := worker(t, dir, "hang")
	if err := hung.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first worker is mid-job", func() bool {
		_, err := os.Stat(filepath.Join(dir, "mid-job"))
		return err == nil
	})
	if err := hung.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	hung.Wait()
	// As if the time it takes to deem a job left behind had passed.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "jobs.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE river_job SET attempted_at = ? WHERE state = 'running'`, time.Now().Add(-time.Hour).UTC())
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("the killed worker's job: %v, %d rows running; want 1", err, n)
	}
	db.Close()

	second := worker(t, dir, "work")
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("the second worker: %v\n%s", err, out)
	}

	if w.log, err = sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.log.Close() })
	if w.queue, err = reactors.OpenQueue(context.Background(), filepath.Join(dir, "jobs.db"), reactors.QueueOptions{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.queue.Close() })
	if job := w.job(); job.State != rivertype.JobStateCompleted || job.Attempt != 2 {
		t.Errorf("the job is %s after %d attempts; want completed at the second", job.State, job.Attempt)
	}
	if w.bucket, err = fileblob.OpenBucket(filepath.Join(dir, "blobs"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.bucket.Close() })
	w.checkOneCertificate()
}

// worker is this test binary run as a worker process on dir.
func worker(t *testing.T, dir, mode string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), workerDirEnv+"="+dir, workerModeEnv+"="+mode)
	return cmd
}

// TestWorkerProcess is a certificate worker process when TestAWorkerKilledMidJob runs this test
// binary as one, and nothing otherwise. In mode "hang" it stops for good once it has recorded
// the certificate, to be killed; in mode "work" it returns once the certificate job has
// completed.
func TestWorkerProcess(t *testing.T) {
	dir, mode := os.Getenv(workerDirEnv), os.Getenv(workerModeEnv)
	if dir == "" {
		return
	}
	log, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	h, err := commands.New(log, time.Now, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := fileblob.OpenBucket(filepath.Join(dir, "blobs"), &fileblob.Options{CreateDir: true, DirFileMode: 0o700, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	var i certificate.Issuer = issuer{h}
	if mode == "hang" {
		i = hang{i, filepath.Join(dir, "mid-job")}
	}
	public, _ := url.Parse("https://school.example")
	wk, err := certificate.NewWorker(certificate.Options{Streams: log, Bucket: bucket, Issuer: i, PublicURL: public,
		Backoff: reactors.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, wk)
	queue, err := reactors.OpenQueue(context.Background(), filepath.Join(dir, "jobs.db"), reactors.QueueOptions{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Workers: workers, Queues: map[string]int{certificate.Queue: 1},
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- queue.Work(ctx) }()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		jobs, err := queue.Jobs(context.Background(), certificate.Args{}.Kind())
		if err == nil && len(jobs) == 1 && jobs[0].State == rivertype.JobStateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate job did not complete within 90s: %v %v", jobs, err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// hang records the certificate, says so with a file, and never returns: a worker caught
// mid-job.
type hang struct {
	certificate.Issuer
	mark string
}

func (h hang) IssueCertificate(ctx context.Context, c certificate.Issue) error {
	if err := h.Issuer.IssueCertificate(ctx, c); err != nil {
		return err
	}
	if err := os.WriteFile(h.mark, nil, 0o600); err != nil {
		return err
	}
	<-make(chan struct{})
	return errors.New("unreachable")
}
