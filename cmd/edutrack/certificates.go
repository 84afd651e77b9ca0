package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/certificate"
	"github.com/edutrack/edutrack/reactors/email"
	"github.com/edutrack/edutrack/reactors/email/smtpmail"
)

// certificateWorkers is how many certificates one work process renders at once.
const certificateWorkers = 4

// certificateBackoff spaces out the attempts of a failed certificate: 10 s, then twice as long
// each time up to two hours, each drawn between half and all of that; with
// certificate.MaxAttempts a blob store may be away for a day before a job is discarded.
var certificateBackoff = reactors.ExponentialBackoff(10*time.Second, 2*time.Hour)

// blobBucket is the bucket of the certificates' PDFs, opened at the first call and closed with
// the process. A directory: created private (0700), so the PDFs in it are the owner's alone
// whatever their own mode, and written through temporary files beside them, never in /tmp. A
// bucket of an S3-compatible store: a readiness check reports it degraded when it does not
// answer (the certificates wait for it; nothing else does).
func (p *process) blobBucket(ctx context.Context) (*blob.Bucket, error) {
	if p.bucket != nil {
		return p.bucket, nil
	}
	if p.cfg.blobS3 != nil {
		b, closeIdle, err := s3Bucket(ctx, p.cfg.blobS3)
		if err != nil {
			return nil, fmt.Errorf("EDUTRACK_BLOB_URL %s: %w", p.cfg.blobS3.url.Redacted(), err)
		}
		p.bucket = b
		p.closers = append(p.closers, b.Close, closeIdle)
		p.readiness.NonCritical["blob_store"] = blobCheck(b)
		return b, nil
	}
	dir := p.blobDir()
	signer, err := fileURLSigner(p.cfg, p.log)
	if err != nil {
		return nil, err
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, DirFileMode: 0o700, NoTempDir: true, URLSigner: signer})
	if err != nil {
		return nil, fmt.Errorf("open the blob bucket %s: %w", dir, err)
	}
	p.bucket, p.signer = b, signer
	p.closers = append(p.closers, b.Close)
	return b, nil
}

// certificateBucket is where the certificate jobs write: the bucket, made to keep each file
// private when it is a directory.
func (p *process) certificateBucket(ctx context.Context) (certificate.Bucket, error) {
	b, err := p.blobBucket(ctx)
	if err != nil || p.cfg.blobS3 != nil {
		return b, err
	}
	return privateFiles{b, p.blobDir()}, nil
}

func (p *process) blobDir() string {
	if p.cfg.blobDir == "" {
		return filepath.Join(p.cfg.dataDir, "blobs")
	}
	return p.cfg.blobDir
}

// privateFiles narrows each file the file bucket writes to its owner: fileblob creates them
// 0666 less the umask, and the directory's 0700 alone would not keep a PDF private once the
// tree is copied with its modes (a backup, an archive).
type privateFiles struct {
	*blob.Bucket
	dir string
}

func (b privateFiles) WriteAll(ctx context.Context, key string, data []byte, opts *blob.WriterOptions) error {
	if err := b.Bucket.WriteAll(ctx, key, data, opts); err != nil {
		return err
	}
	return privateFile(b.dir, key)
}

// privateFile narrows the file of key in the file bucket at dir, and its attributes, to
// their owner.
func privateFile(dir, key string) error {
	// Keys are ours, of characters fileblob keeps as they are: the file is the key's path.
	for _, f := range []string{key, key + ".attrs"} {
		if err := os.Chmod(filepath.Join(dir, filepath.FromSlash(f)), 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s private: %w", f, err)
		}
	}
	return nil
}

// certificates adds the certificate trigger to triggers and the certificate worker to opts,
// where this process works and can append to the log; elsewhere the jobs wait for a process
// that can.
func (p *process) certificates(ctx context.Context, opts *reactors.QueueOptions, triggers []reactors.Trigger) ([]reactors.Trigger, error) {
	if p.cfg.noCertificates {
		p.log.Info("certificates are off (EDUTRACK_CERTIFICATES): completed courses get none")
		return triggers, nil
	}
	triggers = append(triggers, certificate.OnCompleted)
	handler, err := p.jobHandler("certificate")
	if err != nil || handler == nil {
		return triggers, err
	}
	bucket, err := p.certificateBucket(ctx)
	if err != nil {
		return nil, err
	}
	o := certificate.Options{Streams: p.events, Bucket: bucket, Issuer: issuer{handler}, PublicURL: p.publicURL(),
		Backoff: certificateBackoff}
	if p.cfg.smtp != nil {
		if o.Mailer, err = p.mailer(); err != nil {
			return nil, err
		}
	}
	worker, err := certificate.NewWorker(o)
	if err != nil {
		return nil, err
	}
	if opts.Workers == nil {
		opts.Workers, opts.Queues = river.NewWorkers(), map[string]int{}
	}
	opts.Queues[certificate.Queue] = certificateWorkers
	return triggers, river.AddWorkerSafely(opts.Workers, worker)
}

func (p *process) mailer() (email.Mailer, error) {
	return smtpmail.New(smtpmail.Config{URL: p.cfg.smtp.url, From: p.cfg.smtp.from, Username: p.cfg.smtp.username,
		Password: p.cfg.smtp.password})
}

// publicURL is EDUTRACK_PUBLIC_URL, or else this process's own address on localhost, which a
// certificate rendered for a test or a demo can link to; the start-up log says so.
func (p *process) publicURL() *url.URL {
	if p.cfg.publicURL != nil {
		return p.cfg.publicURL
	}
	_, port, _ := net.SplitHostPort(p.cfg.httpAddr)
	u := &url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", port)}
	p.log.Warn("no EDUTRACK_PUBLIC_URL: certificates link to this machine for verification", "url", u.String())
	return u
}

// issuer sends the certificate jobs' IssueCertificate commands as EduTrack itself, the job's
// command id making every attempt of one job the same command.
type issuer struct{ h *commands.Handler }

// certificateActor names the part of EduTrack that issues certificates in the events' metadata.
var certificateActor = domain.Actor{UserID: "edutrack-certificates"}

func (i issuer) IssueCertificate(ctx context.Context, c certificate.Issue) error {
	_, err := i.h.IssueCertificate(ctx, commands.Meta{CommandID: c.CommandID, CorrelationID: c.CommandID, Actor: certificateActor},
		commands.IssueCertificate{LearnerID: c.LearnerID, CourseID: c.CourseID, CertificateID: c.CertificateID, BlobKey: c.BlobKey, SHA256: c.SHA256})
	return err
}

// jobHandler is the command handler through which this process's workers of what jobs send
// their results, or nil where they do not run here: a process without the work role, or one that
// cannot append to the log (it leaves the jobs to one that can, and says so).
func (p *process) jobHandler(what string) (*commands.Handler, error) {
	if !p.cfg.roles.work {
		return nil, nil
	}
	handler, err := p.commandHandler()
	if err != nil || handler != nil {
		return handler, err
	}
	p.log.Info("this process cannot append to the event log: it leaves " + what + " jobs to one that can")
	return nil, nil
}
