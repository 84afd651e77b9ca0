package certificate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/goleak"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/certificate"
	"github.com/edutrack/edutrack/reactors/email"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var completedAt = time.Date(2026, 5, 4, 13, 14, 15, 0, time.UTC)

func TestRenderIsTheSameBytesForTheSameContent(t *testing.T) {
	c := certificate.Content{CertificateID: "c1", LearnerName: "Zoë Lovelace", CourseTitle: "Go & You (part 1)", Instructor: "Grace Hopper",
		CompletedAt: completedAt, VerificationURL: "https://school.example/v1/certificates/c1"}
	for _, compress := range []bool{true, false} {
		a, err := certificate.Render(c, compress)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // a PDF dated by the clock would differ now
		b, err := certificate.Render(c, compress)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("compress=%v: two renderings differ", compress)
		}
	}
	plain, _ := certificate.Render(c, false)
	// In the core font, as Windows-1252 writes it.
	for _, want := range []string{"(Zo\xeb Lovelace)", "(Go & You \\(part 1\\))", "(taught by Grace Hopper)", "(on 4 May 2026)", "(Certificate c1)",
		"(Verify it at https://school.example/v1/certificates/c1)", "/CreationDate (D:20260504131415)"} {
		if !bytes.Contains(plain, []byte(want)) {
			t.Errorf("the PDF lacks %q", want)
		}
	}
}

// A name that Windows-1252 cannot write prints as it is written, in an embedded Unicode font,
// not as question marks.
func TestRenderWritesNamesInOtherScripts(t *testing.T) {
	c := certificate.Content{CertificateID: "c2", LearnerName: "Łukasz Дмитриев", CourseTitle: "Αλγόριθμοι (part 1)", Instructor: "Grace Hopper",
		CompletedAt: completedAt, VerificationURL: "https://school.example/v1/certificates/c2"}
	a, err := certificate.Render(c, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Łukasz Дмитриев", "Αλγόριθμοι (part 1)", "taught by Grace Hopper", "on 4 May 2026",
		"Certificate c2", "Verify it at https://school.example/v1/certificates/c2"} {
		if !bytes.Contains(a, pdfText(want)) {
			t.Errorf("the PDF lacks %q", want)
		}
	}
	if b, _ := certificate.Render(c, false); !bytes.Equal(a, b) {
		t.Error("two renderings differ")
	}
}

// pdfText is s as an uncompressed PDF shows it in an embedded Unicode font: a string of its
// UTF-16BE code units, with the bytes a PDF string escapes escaped.
func pdfText(s string) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		for _, b := range []byte{byte(u >> 8), byte(u)} {
			switch b {
			case '(', ')', '\\':
				out = append(out, '\\', b)
			case '\r':
				out = append(out, '\\', 'r')
			default:
				out = append(out, b)
			}
		}
	}
	return append(append([]byte("("), out...), ')')
}

// world is an event log with a course that ada completed, a job queue, a file bucket and the
// certificate worker, whose bucket, issuer and mailer the test may wrap.
type world struct {
	t       *testing.T
	log     *sqlitelog.Log
	handler *commands.Handler
	bucket  *blob.Bucket
	queue   *reactors.Queue
	mails   *mailbox
}

type wrappers struct {
	bucket func(certificate.Bucket) certificate.Bucket
	issuer func(certificate.Issuer) certificate.Issuer
}

func newWorld(t *testing.T, wrap wrappers) *world {
	t.Helper()
	dir := t.TempDir()
	log, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	h, err := commands.New(log, func() time.Time { return completedAt }, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := fileblob.OpenBucket(filepath.Join(dir, "blobs"), &fileblob.Options{CreateDir: true, DirFileMode: 0o700, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	w := &world{t: t, log: log, handler: h, bucket: bucket, mails: &mailbox{}}
	var b certificate.Bucket = bucket
	if wrap.bucket != nil {
		b = wrap.bucket(b)
	}
	var i certificate.Issuer = issuer{h}
	if wrap.issuer != nil {
		i = wrap.issuer(i)
	}
	public, _ := url.Parse("https://school.example")
	worker, err := certificate.NewWorker(certificate.Options{Streams: log, Bucket: b, Issuer: i, Mailer: w.mails, PublicURL: public,
		Backoff: reactors.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.queue, err = reactors.OpenQueue(context.Background(), filepath.Join(dir, "jobs.db"), reactors.QueueOptions{Logger: quiet,
		Workers: workers, Queues: map[string]int{certificate.Queue: 1}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.queue.Close() })
	reactor, err := reactors.NewReactor(log, w.queue, quiet, reactors.ReactorOptions{Owner: "test", RetryDelay: 10 * time.Millisecond},
		certificate.OnCompleted)
	if err != nil {
		t.Fatal(err)
	}
	w.run(w.queue.Work)
	w.run(reactor.Run)
	return w
}

// run runs fn until the test ends.
func (w *world) run(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Error(err)
		}
	})
}

// completeTheCourse has ada complete grace's course, through the commands, as over HTTP.
func (w *world) completeTheCourse() {
	w.t.Helper()
	ctx, m := context.Background(), commands.Meta{}
	steps := []error{
		second(w.handler.RegisterUser(ctx, m, commands.RegisterUser{ID: "grace", Name: "Grace Hopper", Email: "grace@school.example", Role: "instructor"})),
		second(w.handler.RegisterUser(ctx, m, commands.RegisterUser{ID: "ada", Name: "Ada Lovelace", Email: "ada@school.example", Role: "learner"})),
		second(w.handler.CreateCourse(ctx, m, commands.CreateCourse{ID: "go", Title: "Go & You", Category: "programming", Level: "beginner", InstructorID: "grace"})),
		second(w.handler.AddModule(ctx, m, commands.AddModule{CourseID: "go", ModuleID: "m1", Title: "Intro"})),
		second(w.handler.PublishCourse(ctx, m, commands.PublishCourse{ID: "go"})),
		second(w.handler.EnrollStudent(ctx, m, commands.EnrollStudent{CourseID: "go", LearnerID: "ada"})),
	}
	_, err := w.handler.CompleteModule(ctx, m, commands.CompleteModule{LearnerID: "ada", CourseID: "go", ModuleID: "m1"})
	for _, err := range append(steps, err) {
		if err != nil {
			w.t.Fatal(err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// certificates are the CertificateIssued events of ada's stream.
func (w *world) certificates() []learner.CertificateIssued {
	w.t.Helper()
	codec, err := commands.NewCodec()
	if err != nil {
		w.t.Fatal(err)
	}
	events, err := w.log.ReadStream(context.Background(), learner.StreamPrefix+"ada", 1, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []learner.CertificateIssued
	for _, e := range events {
		ev, err := codec.Decode(e.Type, e.Data)
		if err != nil {
			w.t.Fatal(err)
		}
		if c, ok := ev.(learner.CertificateIssued); ok {
			out = append(out, c)
		}
	}
	return out
}

func (w *world) job() *rivertype.JobRow {
	w.t.Helper()
	jobs, err := w.queue.Jobs(context.Background(), certificate.Args{}.Kind())
	if err != nil {
		w.t.Fatal(err)
	}
	if len(jobs) != 1 {
		return nil
	}
	return jobs[0]
}

// waitDone waits for the certificate job to complete, and returns it.
func (w *world) waitDone() *rivertype.JobRow {
	w.t.Helper()
	var job *rivertype.JobRow
	eventually(w.t, "the certificate job completed", func() bool {
		job = w.job()
		return job != nil && (job.State == rivertype.JobStateCompleted || job.State == rivertype.JobStateCancelled ||
			job.State == rivertype.JobStateDiscarded)
	})
	if job.State != rivertype.JobStateCompleted {
		w.t.Fatalf("job %s after %d attempts: %v", job.State, job.Attempt, job.Errors)
	}
	return job
}

// checkOneCertificate checks that ada holds exactly one certificate, whose PDF is in the bucket
// with the digest the event records and names ada and the course.
func (w *world) checkOneCertificate() learner.CertificateIssued {
	w.t.Helper()
	certs := w.certificates()
	if len(certs) != 1 {
		w.t.Fatalf("%d certificates; want 1: %+v", len(certs), certs)
	}
	c := certs[0]
	doc, err := w.bucket.ReadAll(context.Background(), c.BlobKey)
	if err != nil {
		w.t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	if hex.EncodeToString(sum[:]) != c.SHA256 {
		w.t.Errorf("the stored PDF's digest is %x; the event says %s", sum, c.SHA256)
	}
	if c.CourseID != "go" || !c.CompletedAt.Equal(completedAt) || !strings.HasPrefix(c.BlobKey, "certificates/"+c.CertificateID+"/") {
		w.t.Errorf("certificate %+v", c)
	}
	if !bytes.HasPrefix(doc, []byte("%PDF-")) {
		w.t.Errorf("the blob is no PDF: %.20q", doc)
	}
	return c
}

func TestACompletedCourseGetsOneCertificate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wrappers{})
	w.completeTheCourse()
	job := w.waitDone()
	c := w.checkOneCertificate()
	args := job.EncodedArgs
	if !bytes.Contains(args, []byte(`"learnerId":"ada"`)) || bytes.Contains(args, []byte("Ada")) {
		t.Errorf("the job's args hold more than ids: %s", args)
	}
	msgs := w.mails.all()
	if len(msgs) != 1 {
		t.Fatalf("%d emails; want 1", len(msgs))
	}
	m := msgs[0]
	var a certificate.Args
	if err := json.Unmarshal(args, &a); err != nil {
		t.Fatal(err)
	}
	eventID := a.EventID
	if m.ID != "certificate."+eventID+"@school.example" || m.To.Address != "ada@school.example" ||
		!strings.Contains(m.Text, "https://school.example/v1/certificates/"+c.CertificateID) || c.CertificateID != certificate.ID(eventID) {
		t.Errorf("email %+v for certificate %s", m, c.CertificateID)
	}
}

// A crash is a failed attempt at that point: the job runs again from the start.
func TestACrashedJobIssuesOneCertificate(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]wrappers{
		"after the PDF is stored, before the command": {issuer: func(i certificate.Issuer) certificate.Issuer {
			return &crashing{Issuer: i, before: true}
		}},
		"after the command, before the job completes": {issuer: func(i certificate.Issuer) certificate.Issuer {
			return &crashing{Issuer: i}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, wrap)
			w.completeTheCourse()
			if job := w.waitDone(); job.Attempt != 2 {
				t.Errorf("the job completed at attempt %d; want 2", job.Attempt)
			}
			w.checkOneCertificate()
			if n := len(w.mails.all()); n != 1 {
				t.Errorf("%d emails; want 1", n)
			}
		})
	}
}

func TestCertificatesWaitForTheBlobStore(t *testing.T) {
	t.Parallel()
	down := &unavailable{failures: 3}
	w := newWorld(t, wrappers{bucket: func(b certificate.Bucket) certificate.Bucket { down.Bucket = b; return down }})
	w.completeTheCourse()
	job := w.waitDone()
	if job.Attempt != 4 || len(job.Errors) != 3 || !strings.Contains(job.Errors[0].Error, "blob store unavailable") {
		t.Errorf("attempt %d, errors %v; want the 4th attempt after 3 failures", job.Attempt, job.Errors)
	}
	w.checkOneCertificate()
}

func TestASecondCertificateOfTheCourseIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wrappers{})
	w.completeTheCourse()
	w.waitDone()
	c := w.checkOneCertificate()
	err := issuer{w.handler}.IssueCertificate(context.Background(), certificate.Issue{CommandID: "another", LearnerID: "ada", CourseID: "go",
		CertificateID: "another-one", BlobKey: c.BlobKey, SHA256: c.SHA256})
	if !errors.Is(err, learner.ErrCertificateAlreadyIssued) {
		t.Errorf("err = %v; want %v", err, learner.ErrCertificateAlreadyIssued)
	}
	w.checkOneCertificate()
}

// issuer sends IssueCertificate to the command handler as EduTrack itself, as cmd/edutrack does.
type issuer struct{ h *commands.Handler }

func (i issuer) IssueCertificate(ctx context.Context, c certificate.Issue) error {
	_, err := i.h.IssueCertificate(ctx, commands.Meta{CommandID: c.CommandID, Actor: domain.Actor{UserID: "certificates"}},
		commands.IssueCertificate{LearnerID: c.LearnerID, CourseID: c.CourseID, CertificateID: c.CertificateID, BlobKey: c.BlobKey, SHA256: c.SHA256})
	return err
}

// crashing fails the first command, before sending it or after.
type crashing struct {
	certificate.Issuer
	before  bool
	crashed atomic.Bool
}

func (c *crashing) IssueCertificate(ctx context.Context, cmd certificate.Issue) error {
	if c.before && c.crashed.CompareAndSwap(false, true) {
		return errors.New("crash before the command")
	}
	if err := c.Issuer.IssueCertificate(ctx, cmd); err != nil {
		return err
	}
	if !c.before && c.crashed.CompareAndSwap(false, true) {
		return errors.New("crash after the command")
	}
	return nil
}

// unavailable fails the first writes, as a blob store that is down.
type unavailable struct {
	certificate.Bucket
	mu       sync.Mutex
	failures int
}

func (u *unavailable) WriteAll(ctx context.Context, key string, p []byte, opts *blob.WriterOptions) error {
	u.mu.Lock()
	down := u.failures > 0
	u.failures--
	u.mu.Unlock()
	if down {
		return errors.New("blob store unavailable")
	}
	return u.Bucket.WriteAll(ctx, key, p, opts)
}

type mailbox struct {
	mu   sync.Mutex
	msgs []email.Message
}

func (b *mailbox) Send(_ context.Context, m email.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	return nil
}

func (b *mailbox) all() []email.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]email.Message(nil), b.msgs...)
}

// eventually fails the test unless cond holds within 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 10s: %s", what)
		}
	}
}
