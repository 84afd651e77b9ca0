package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/courseimage"
)

// Course images: the upload (write role), the jobs that make their variants and delete what a
// replaced image leaves (react and work roles), in the blob bucket of the certificates.
const (
	// defaultImageMaxBytes is EDUTRACK_IMAGE_MAX_BYTES's default, 10 MiB: a phone's photo.
	defaultImageMaxBytes = 10 << 20
	// maxImageMaxBytes bounds the setting: the body is held in memory while it is checked.
	maxImageMaxBytes = 100 << 20
	// maxImagePixels refuses decompression bombs from their header: 40 megapixels.
	maxImagePixels = 40_000_000
	// imageWorkers is how many images one work process makes at once: each holds about
	// 120 MiB at its peak (BENCHMARKS.md, "Course images").
	imageWorkers = 2
	// imageDeleteDelay is how long the blobs of a replaced image are kept: pages opened
	// before still show it, and a CDN asks for what it has not cached.
	imageDeleteDelay = 24 * time.Hour
)

// imageBackoff spaces out the attempts of a failed image: 10 s, doubling up to an hour.
var imageBackoff = reactors.ExponentialBackoff(10*time.Second, time.Hour)

// mediaConfig is the configuration of course images and media.
type mediaConfig struct {
	imageMaxBytes int64
	// baseURL is EDUTRACK_MEDIA_BASE_URL, without its trailing slash; empty: GET /media.
	baseURL string
}

func (s settings) mediaProblems() []error {
	var problems []error
	if n, err := strconv.ParseInt(s.imageMaxBytes, 10, 64); err != nil || n <= 0 || n > maxImageMaxBytes {
		problems = append(problems, fmt.Errorf("EDUTRACK_IMAGE_MAX_BYTES %q: want a number of bytes from 1 to %d", s.imageMaxBytes, maxImageMaxBytes))
	}
	if s.mediaBaseURL != "" {
		u, err := url.Parse(s.mediaBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			problems = append(problems, fmt.Errorf("EDUTRACK_MEDIA_BASE_URL %q: want an http(s) URL without query, such as https://cdn.school.example/media", s.mediaBaseURL))
		}
	}
	return problems
}

func (s settings) mediaConfig() mediaConfig {
	n, _ := strconv.ParseInt(s.imageMaxBytes, 10, 64)
	base := s.mediaBaseURL
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return mediaConfig{imageMaxBytes: n, baseURL: base}
}

// mediaBucket is where originals and variants are kept: the bucket of the certificates, each
// file private when it is a directory (GET /media is what serves variants).
func (p *process) mediaBucket(ctx context.Context) (courseimage.Bucket, error) {
	b, err := p.blobBucket(ctx)
	if err != nil || p.cfg.blobS3 != nil {
		return b, err
	}
	return privateFiles{b, p.blobDir()}, nil
}

// imageUploads mounts PUT /v1/courses/{id}/image.
func (p *process) imageUploads(ctx context.Context, handler *commands.Handler) error {
	bucket, err := p.mediaBucket(ctx)
	if err != nil {
		return err
	}
	images, err := writeapi.NewImages(handler, bucket, p.log, writeapi.ImageOptions{MaxBytes: p.cfg.media.imageMaxBytes, MaxPixels: maxImagePixels})
	if err != nil {
		return err
	}
	images.Routes(p.v1)
	p.images = images
	return nil
}

// courseImages adds the image triggers to triggers and their workers to opts, where this
// process works and can append to the log; elsewhere the jobs wait for a process that can.
func (p *process) courseImages(ctx context.Context, opts *reactors.QueueOptions, triggers []reactors.Trigger) ([]reactors.Trigger, error) {
	triggers = append(triggers, courseimage.OnUploaded, courseimage.OnReplaced(imageDeleteDelay))
	handler, err := p.jobHandler("image")
	if err != nil || handler == nil {
		return triggers, err
	}
	bucket, err := p.mediaBucket(ctx)
	if err != nil {
		return nil, err
	}
	o := courseimage.Options{Streams: p.events, Bucket: bucket, Setter: imageSetter{handler}, MaxPixels: maxImagePixels, Backoff: imageBackoff}
	worker, err := courseimage.NewWorker(o)
	if err != nil {
		return nil, err
	}
	deleter, err := courseimage.NewDeleter(o)
	if err != nil {
		return nil, err
	}
	if opts.Workers == nil {
		opts.Workers, opts.Queues = river.NewWorkers(), map[string]int{}
	}
	opts.Queues[courseimage.Queue] = imageWorkers
	if err := river.AddWorkerSafely(opts.Workers, worker); err != nil {
		return nil, err
	}
	return triggers, river.AddWorkerSafely(opts.Workers, deleter)
}

// imageSetter sends the image jobs' SetCourseImage commands as EduTrack itself.
type imageSetter struct{ h *commands.Handler }

// imageActor names the part of EduTrack that makes images in the events' metadata.
var imageActor = domain.Actor{UserID: "edutrack-images"}

func (s imageSetter) SetCourseImage(ctx context.Context, c courseimage.Set) error {
	_, err := s.h.SetCourseImage(ctx, commands.Meta{CommandID: c.CommandID, CorrelationID: c.CommandID, Actor: imageActor},
		commands.SetCourseImage{CourseID: c.CourseID, SHA256: c.SHA256, Variants: c.Variants})
	return err
}
