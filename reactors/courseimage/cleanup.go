package courseimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"gocloud.dev/gcerrors"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore"
)

// DeleteArgs is the job that deletes the blobs an image no longer uses, after a delay: pages
// opened before the change still ask for them, and a CDN serves them until it asks again.
type DeleteArgs struct {
	// EventID is the id of the event that left the blobs unused.
	EventID  string   `json:"eventId" river:"unique"`
	CourseID string   `json:"courseId"`
	Keys     []string `json:"keys"`
	// NotBefore is when the blobs may go: the event's time and the delay.
	NotBefore time.Time `json:"notBefore"`
}

// Kind names the job in the queue.
func (DeleteArgs) Kind() string { return "course_image_delete" }

// InsertOpts schedules the job at NotBefore, in the image queue.
func (a DeleteArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts, ScheduledAt: a.NotBefore}
}

// OnReplaced is the reactor's trigger of the deletions: for an ImageUploaded or ImageSet event
// that lists replaced blobs, a job that deletes them delay after the event.
func OnReplaced(delay time.Duration) func(e eventstore.RecordedEvent) (river.JobArgs, error) {
	return func(e eventstore.RecordedEvent) (river.JobArgs, error) {
		var replaced []string
		var courseID string
		switch e.Type {
		case (course.ImageUploaded{}).EventType():
			var ev course.ImageUploaded
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Position, err)
			}
			courseID, replaced = ev.CourseID, ev.Replaced
		case (course.ImageSet{}).EventType():
			var ev course.ImageSet
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Position, err)
			}
			courseID, replaced = ev.CourseID, ev.Replaced
		}
		if len(replaced) == 0 {
			return nil, nil
		}
		return DeleteArgs{EventID: e.ID.String(), CourseID: courseID, Keys: replaced, NotBefore: e.RecordedAt.Add(delay).UTC()}, nil
	}
}

// Deleter deletes replaced blobs.
type Deleter struct {
	river.WorkerDefaults[DeleteArgs]
	o     Options
	codec *eventstore.Codec
}

// NewDeleter returns the worker of the deletions; it needs the streams, the bucket and the
// backoff of o.
func NewDeleter(o Options) (*Deleter, error) {
	if o.Streams == nil || o.Bucket == nil || o.Backoff == nil {
		return nil, errors.New("courseimage: streams, a bucket and a backoff are required")
	}
	codec, err := eventstore.NewCodec(course.Events()...)
	if err != nil {
		return nil, err
	}
	return &Deleter{o: o, codec: codec}, nil
}

// Work deletes the job's blobs that the course does not use now: the same image may have been
// uploaded again since it was replaced, and its keys, named by content, are then the new
// image's too.
func (d *Deleter) Work(ctx context.Context, job *river.Job[DeleteArgs]) error {
	c, err := readCourse(ctx, d.o.Streams, d.codec, job.Args.CourseID)
	if err != nil {
		return err
	}
	return deleteUnused(ctx, d.o.Bucket, c, job.Args.Keys)
}

// NextRetry spaces the attempts out by the backoff.
func (d *Deleter) NextRetry(job *river.Job[DeleteArgs]) time.Time {
	return time.Now().Add(d.o.Backoff(job.Attempt))
}

func deleteUnused(ctx context.Context, b Bucket, c *course.Course, keys []string) error {
	inUse := c.ImageKeys()
	for _, k := range keys {
		if slices.Contains(inUse, k) {
			continue
		}
		if err := b.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
}
