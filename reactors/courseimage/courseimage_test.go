package courseimage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/riverqueue/river"
	"go.uber.org/goleak"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/image/webp"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/imagefile/imagefiletest"
	"github.com/edutrack/edutrack/internal/tests3"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/courseimage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(tests3.Main(m)) }

// buckets are the stores the pipeline runs against: a directory, and a real S3-compatible server.
var buckets = map[string]func(t *testing.T) *blob.Bucket{
	"file": func(t *testing.T) *blob.Bucket {
		b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{NoTempDir: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	},
	"s3": func(t *testing.T) *blob.Bucket {
		tb := tests3.NewBucket(t)
		transport := &http.Transport{}
		client := s3.New(s3.Options{Region: tests3.Region, BaseEndpoint: aws.String(tb.Endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(tb.AccessKey, tb.SecretKey, ""), HTTPClient: &http.Client{Transport: transport}})
		b, err := s3blob.OpenBucket(context.Background(), client, tb.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); transport.CloseIdleConnections() })
		return b
	},
}

// world is an event log with grace's course, a job queue with the image workers, the reactor
// (deleting replaced blobs at once), and a bucket.
type world struct {
	t       *testing.T
	log     *sqlitelog.Log
	handler *commands.Handler
	bucket  *blob.Bucket
}

func newWorld(t *testing.T, bucket *blob.Bucket) *world {
	t.Helper()
	dir := t.TempDir()
	log, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	h, err := commands.New(log, time.Now, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, log: log, handler: h, bucket: bucket}
	o := courseimage.Options{Streams: log, Bucket: bucket, Setter: setter{h}, MaxPixels: 40_000_000,
		Backoff: reactors.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond)}
	worker, err := courseimage.NewWorker(o)
	if err != nil {
		t.Fatal(err)
	}
	deleter, err := courseimage.NewDeleter(o)
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	river.AddWorker(workers, deleter)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	queue, err := reactors.OpenQueue(context.Background(), filepath.Join(dir, "jobs.db"), reactors.QueueOptions{Logger: quiet,
		Workers: workers, Queues: map[string]int{courseimage.Queue: 2}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { queue.Close() })
	reactor, err := reactors.NewReactor(log, queue, quiet, reactors.ReactorOptions{Owner: "test", RetryDelay: 10 * time.Millisecond},
		courseimage.OnUploaded, courseimage.OnReplaced(0))
	if err != nil {
		t.Fatal(err)
	}
	w.run(queue.Work)
	w.run(reactor.Run)
	ctx, m := context.Background(), commands.Meta{}
	if _, err := h.RegisterUser(ctx, m, commands.RegisterUser{ID: "grace", Name: "Grace Hopper", Email: "grace@school.example", Role: "instructor"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateCourse(ctx, m, commands.CreateCourse{ID: "go", Title: "Go", Category: "programming", Level: "beginner", InstructorID: "grace"}); err != nil {
		t.Fatal(err)
	}
	return w
}

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

// upload stores data as the writeapi does and records it, as grace.
func (w *world) upload(data []byte, format string, width, height int) string {
	w.t.Helper()
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	key := "originals/courses/go/" + hexSum
	if err := w.bucket.WriteAll(context.Background(), key, data, nil); err != nil {
		w.t.Fatal(err)
	}
	_, err := w.handler.UploadCourseImage(context.Background(), commands.Meta{Actor: domain.Actor{UserID: "grace", Role: domain.Instructor}},
		commands.UploadCourseImage{CourseID: "go", Image: course.ImageUpload{SHA256: hexSum, Key: key, Format: format, Width: width,
			Height: height, Bytes: int64(len(data))}})
	if err != nil {
		w.t.Fatal(err)
	}
	return hexSum
}

// shown waits until the course shows the image of upload sum, and returns its variants.
func (w *world) shown(sum string) []course.ImageVariant {
	w.t.Helper()
	codec, _ := commands.NewCodec()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		events, err := w.log.ReadStream(context.Background(), course.StreamPrefix+"go", 1, 0)
		if err != nil {
			w.t.Fatal(err)
		}
		var last *course.ImageSet
		for _, e := range events {
			ev, _ := codec.Decode(e.Type, e.Data)
			if s, ok := ev.(course.ImageSet); ok {
				last = &s
			}
		}
		if last != nil && last.SHA256 == sum {
			return last.Variants
		}
	}
	w.t.Fatalf("the image %s was never set", sum)
	return nil
}

func (w *world) exists(key string) bool {
	ok, err := w.bucket.Exists(context.Background(), key)
	if err != nil {
		w.t.Fatal(err)
	}
	return ok
}

func TestThePipelineMakesTheVariantsAndDeletesWhatAReplacedImageLeaves(t *testing.T) {
	for name, open := range buckets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open(t))
			photo := imagefiletest.Photo(2400, 1800)
			first := w.upload(photo, "jpeg", 2400, 1800)
			vs := w.shown(first)
			if len(vs) != 6 {
				t.Fatalf("%d variants: %+v", len(vs), vs)
			}
			for _, v := range vs {
				data, err := w.bucket.ReadAll(context.Background(), v.Key)
				if err != nil {
					t.Fatalf("read %s: %v", v.Key, err)
				}
				sum := sha256.Sum256(data)
				if !strings.Contains(v.Key, hex.EncodeToString(sum[:])) || !strings.HasPrefix(v.Key, "media/go.") {
					t.Errorf("key %s does not name its content", v.Key)
				}
				if bytes.Contains(data, []byte(imagefiletest.GPSMark)) || bytes.Contains(data, []byte("Exif")) {
					t.Errorf("%s carries the photo's EXIF", v.Key)
				}
				var decErr error
				var w0, h0 int
				if v.Format == "webp" {
					img, err := webp.Decode(bytes.NewReader(data))
					decErr = err
					if err == nil {
						w0, h0 = img.Bounds().Dx(), img.Bounds().Dy()
					}
				} else {
					img, err := jpeg.Decode(bytes.NewReader(data))
					decErr = err
					if err == nil {
						w0, h0 = img.Bounds().Dx(), img.Bounds().Dy()
					}
				}
				// upright: 1800 wide, 2400 high
				if decErr != nil || w0 != v.Width || h0 != v.Height || h0 != (2400*w0+900)/1800 {
					t.Errorf("%s: %d×%d (%v); recorded %d×%d", v.Key, w0, h0, decErr, v.Width, v.Height)
				}
				attrs, err := w.bucket.Attributes(context.Background(), v.Key)
				if err != nil || attrs.ContentType != "image/"+v.Format {
					t.Errorf("%s: attributes %+v (%v)", v.Key, attrs, err)
				}
			}

			// A second image replaces the first; the first one's blobs go (at once, here).
			second := w.upload(imagefiletest.PNG(imagefiletest.Picture(500, 400)), "png", 500, 400)
			vs2 := w.shown(second)
			if len(vs2) != 4 { // 500 and 320, two formats
				t.Fatalf("%d variants of a 500-pixel image: %+v", len(vs2), vs2)
			}
			gone := append([]string{"originals/courses/go/" + first}, keys(vs)...)
			eventually(t, "the first image's blobs are deleted", func() bool {
				return !slices.ContainsFunc(gone, w.exists)
			})
			for _, k := range append([]string{"originals/courses/go/" + second}, keys(vs2)...) {
				if !w.exists(k) {
					t.Errorf("%s of the image shown is gone", k)
				}
			}
			if _, err := w.bucket.ReadAll(context.Background(), vs[0].Key); gcerrors.Code(err) != gcerrors.NotFound {
				t.Errorf("read a deleted variant: %v", err)
			}
		})
	}
}

func keys(vs []course.ImageVariant) []string {
	var ks []string
	for _, v := range vs {
		ks = append(ks, v.Key)
	}
	return ks
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s", what)
		}
	}
}

type setter struct{ h *commands.Handler }

func (s setter) SetCourseImage(ctx context.Context, c courseimage.Set) error {
	_, err := s.h.SetCourseImage(ctx, commands.Meta{CommandID: c.CommandID, Actor: domain.Actor{UserID: "edutrack-images"}},
		commands.SetCourseImage{CourseID: c.CourseID, SHA256: c.SHA256, Variants: c.Variants})
	return err
}
