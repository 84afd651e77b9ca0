package commands

import (
	"context"

	"github.com/edutrack/edutrack/domain/course"
)

// UploadCourseImage takes a stored original as the course's next image; a job makes its
// variants and sends SetCourseImage.
type UploadCourseImage struct {
	CourseID string
	Image    course.ImageUpload
}

// UploadCourseImage executes c: the course's instructor or an admin; to anyone else the course
// is not found.
func (h *Handler) UploadCourseImage(ctx context.Context, m Meta, c UploadCourseImage) (Result, error) {
	return h.changeCourse(ctx, m, c.CourseID, func(co *course.Course) error { return co.UploadImage(c.Image, h.now()) })
}

// SetCourseImage shows the variants made of the upload SHA256. The image job sends it, as
// EduTrack itself, with an id derived from the upload's event, so a retried job appends nothing
// twice.
type SetCourseImage struct {
	CourseID string
	SHA256   string
	Variants []course.ImageVariant
}

// SetCourseImage executes c. Only EduTrack itself sets images; any caller answers ErrForbidden.
func (h *Handler) SetCourseImage(ctx context.Context, m Meta, c SetCourseImage) (Result, error) {
	if !m.Actor.System() {
		return Result{}, ErrForbidden
	}
	return h.changeCourse(ctx, m, c.CourseID, func(co *course.Course) error { return co.SetImage(c.SHA256, c.Variants, h.now()) })
}

// MayUploadCourseImage answers the error UploadCourseImage would answer m for the course
// before anything is stored: not found (also for another instructor's course), archived, or
// forbidden. It appends nothing.
func (h *Handler) MayUploadCourseImage(ctx context.Context, m Meta, courseID string) error {
	return h.courses.view(ctx, courseID, func(co *course.Course) error {
		if err := m.mayChange(co); err != nil {
			return err
		}
		switch co.Status() {
		case "":
			return course.ErrNotFound
		case course.StatusArchived:
			return course.ErrArchived
		}
		return nil
	})
}
