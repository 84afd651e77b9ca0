// Package courseimage makes the variants of an uploaded course image: the job queued on
// ImageUploaded decodes the stored original, turns it upright, strips its metadata, resizes and
// re-encodes it, stores each variant under a key naming its content, and sends SetCourseImage.
// A second job deletes the blobs a replaced image leaves unused, once CDNs and open pages no
// longer need them.
package courseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/internal/imagefile"
	"github.com/edutrack/edutrack/reactors/logfacts"
)

// Queue is the queue of the image jobs, apart from emails and certificates: an image takes a
// second of CPU and a hundred MiB, which must not hold up an email.
const Queue = "images"

// MaxAttempts is how often an image is tried before its job is discarded.
const MaxAttempts = 10

// Args is the job that makes the variants of one upload. It carries ids and keys only.
type Args struct {
	// EventID is the ImageUploaded event's id: one job per upload.
	EventID  string `json:"eventId" river:"unique"`
	CourseID string `json:"courseId"`
	SHA256   string `json:"sha256"`
	Key      string `json:"key"`
}

// Kind names the job in the queue; it must never change while such jobs may be queued.
func (Args) Kind() string { return "course_image" }

// InsertOpts puts the job in the image queue.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts}
}

// OnUploaded is the reactor's trigger of the variants: the job for an ImageUploaded event, and
// nil for every other event.
func OnUploaded(e eventstore.RecordedEvent) (river.JobArgs, error) {
	if e.Type != (course.ImageUploaded{}).EventType() {
		return nil, nil
	}
	var ev course.ImageUploaded
	if err := json.Unmarshal(e.Data, &ev); err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Position, err)
	}
	return Args{EventID: e.ID.String(), CourseID: ev.CourseID, SHA256: ev.SHA256, Key: ev.Key}, nil
}

// VariantKey is where a variant of course id with digest sum is stored: under media/, which
// GET /media serves, named by the course and the content, so a key is only ever written with
// one content, and two courses with the same picture never share a blob that either may delete.
func VariantKey(courseID, sum string, f imagefile.Format) string {
	ext := "webp"
	if f == imagefile.JPEG {
		ext = "jpg"
	}
	return "media/" + courseID + "." + sum + "." + ext
}

// CommandID is the id of the SetCourseImage command the job of eventID sends: the same for every
// attempt, so the log takes it once.
func CommandID(eventID string) string { return "course-image." + eventID }

// Bucket is where originals are read and variants written: a gocloud.dev *blob.Bucket.
type Bucket interface {
	ReadAll(ctx context.Context, key string) ([]byte, error)
	WriteAll(ctx context.Context, key string, p []byte, opts *blob.WriterOptions) error
	Delete(ctx context.Context, key string) error
}

// Set is the SetCourseImage command, as the job sends it.
type Set struct {
	CommandID string
	CourseID  string
	SHA256    string
	Variants  []course.ImageVariant
}

// Setter sends SetCourseImage. Its errors are the domain's: a Conflict (another image was
// uploaded since) cancels the job, any other error retries it.
type Setter interface {
	SetCourseImage(ctx context.Context, s Set) error
}

// Streams is what the jobs read of the event log: the course's stream.
type Streams = logfacts.Streams

// Backoff says when a failed job is tried again.
type Backoff func(attempt int) time.Duration

// Options are the worker's dependencies.
type Options struct {
	Streams Streams
	Bucket  Bucket
	Setter  Setter
	// MaxPixels is what an original may have (the upload checked it; the job checks again,
	// since the bucket is not the upload's to vouch for).
	MaxPixels int
	Backoff   Backoff
}

// Worker makes the variants of uploads.
type Worker struct {
	river.WorkerDefaults[Args]
	o     Options
	codec *eventstore.Codec
	now   func() time.Time
}

// NewWorker returns the worker.
func NewWorker(o Options) (*Worker, error) {
	if o.Streams == nil || o.Bucket == nil || o.Setter == nil || o.MaxPixels <= 0 || o.Backoff == nil {
		return nil, errors.New("courseimage: streams, a bucket, a setter, a pixel limit and a backoff are required")
	}
	codec, err := eventstore.NewCodec(course.Events()...)
	if err != nil {
		return nil, err
	}
	return &Worker{o: o, codec: codec, now: time.Now}, nil
}

// cacheControl is sent with every variant, for a CDN or browser that reads the bucket itself.
const cacheControl = "public, max-age=31536000, immutable"

// Work makes and stores the variants of one upload, then records them. Each step may run again
// after a crash and changes nothing the second time: the variants are the same bytes under the
// same keys, the command has the same id. An upload another one superseded is not processed.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	a := job.Args
	c, err := readCourse(ctx, w.o.Streams, w.codec, a.CourseID)
	if err != nil {
		return err
	}
	if sha, ok := c.ImagePending(); !ok || sha != a.SHA256 {
		return river.JobCancel(fmt.Errorf("course %s: upload %s is no longer pending", a.CourseID, a.SHA256))
	}
	data, err := w.o.Bucket.ReadAll(ctx, a.Key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return river.JobCancel(fmt.Errorf("course %s: the original %s is gone", a.CourseID, a.Key))
	}
	if err != nil {
		return fmt.Errorf("read the original %s (attempt %d): %w", a.Key, job.Attempt, err)
	}
	made, _, err := imagefile.Variants(data, w.o.MaxPixels)
	data = nil
	if err != nil {
		// The upload decoded it once; bytes that no longer decode will not on a retry either.
		return river.JobCancel(fmt.Errorf("course %s: make the variants of %s: %w", a.CourseID, a.Key, err))
	}
	variants := make([]course.ImageVariant, 0, len(made))
	for i, v := range made {
		sum := sha256.Sum256(v.Data)
		key := VariantKey(a.CourseID, hex.EncodeToString(sum[:]), v.Format)
		err := w.o.Bucket.WriteAll(ctx, key, v.Data, &blob.WriterOptions{ContentType: "image/" + string(v.Format), CacheControl: cacheControl})
		if err != nil {
			return fmt.Errorf("store %s (attempt %d): %w", key, job.Attempt, err)
		}
		made[i].Data = nil
		variants = append(variants, course.ImageVariant{Key: key, Format: string(v.Format), Width: v.Width, Height: v.Height})
	}
	err = w.o.Setter.SetCourseImage(ctx, Set{CommandID: CommandID(a.EventID), CourseID: a.CourseID, SHA256: a.SHA256, Variants: variants})
	if domain.KindOf(err) == domain.Conflict {
		// Another upload came while this one was made: its variants were never shown.
		w.deleteUnused(ctx, a.CourseID, keysOf(variants))
		return river.JobCancel(fmt.Errorf("set the image of course %s: %w", a.CourseID, err))
	}
	if err != nil {
		return fmt.Errorf("set the image of course %s (attempt %d): %w", a.CourseID, job.Attempt, err)
	}
	return nil
}

// deleteUnused deletes what of keys the course does not use now, as best it can: a blob left
// behind costs storage, not correctness.
func (w *Worker) deleteUnused(ctx context.Context, courseID string, keys []string) {
	c, err := readCourse(ctx, w.o.Streams, w.codec, courseID)
	if err != nil {
		return
	}
	deleteUnused(ctx, w.o.Bucket, c, keys)
}

// NextRetry spaces the attempts out by the backoff.
func (w *Worker) NextRetry(job *river.Job[Args]) time.Time {
	return w.now().Add(w.o.Backoff(job.Attempt))
}

// Timeout bounds one attempt: the read, the variants and their uploads.
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return 2 * time.Minute }

func keysOf(vs []course.ImageVariant) []string {
	ks := make([]string, len(vs))
	for i, v := range vs {
		ks[i] = v.Key
	}
	return ks
}

// readCourse replays course id from its stream. A course the log does not know cancels the job.
func readCourse(ctx context.Context, s Streams, codec *eventstore.Codec, id string) (*course.Course, error) {
	events, err := s.ReadStream(ctx, course.StreamPrefix+id, 1, 0)
	if err != nil {
		return nil, fmt.Errorf("read course %s: %w", id, err)
	}
	if len(events) == 0 {
		return nil, river.JobCancel(fmt.Errorf("course %s: no such course", id))
	}
	c := course.New(id)
	for _, e := range events {
		ev, err := codec.Decode(e.Type, e.Data)
		if err != nil {
			return nil, fmt.Errorf("decode %s of course %s: %w", e.Type, id, err)
		}
		c.Apply(ev)
	}
	return c, nil
}
