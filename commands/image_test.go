package commands_test

import (
	"context"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
)

var upload = course.ImageUpload{SHA256: strings.Repeat("ab", 32), Key: "originals/courses/go/" + strings.Repeat("ab", 32),
	Format: "jpeg", Width: 4000, Height: 3000, Bytes: 2 << 20}

func uploadImage(courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.UploadCourseImage(ctx, m, commands.UploadCourseImage{CourseID: courseID, Image: upload}))
	}
}

var variants = []course.ImageVariant{{Key: "courses/go/x.webp", Format: "webp", Width: 1280, Height: 960}}

func setImage(courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.SetCourseImage(ctx, m, commands.SetCourseImage{CourseID: courseID, SHA256: upload.SHA256, Variants: variants}))
	}
}

func TestUploadCourseImage(t *testing.T) {
	want := course.ImageUploaded{CourseID: "go", SHA256: upload.SHA256, Key: upload.Key, Format: "jpeg", Width: 4000, Height: 3000,
		Bytes: 2 << 20, At: t1}
	runCases(t, []commandCase{
		{name: "takes the image from the course's instructor", given: draftCourse(), when: uploadImage("go"), stream: "course-go",
			caller: domain.Actor{UserID: "ins", Role: domain.Instructor}, then: []domain.Event{want}, id: "go"},
		{name: "takes the image from an admin", given: draftCourse(), when: uploadImage("go"), stream: "course-go",
			caller: domain.Actor{UserID: "root", Role: domain.Admin}, then: []domain.Event{want}, id: "go"},
		{name: "answers not found to another instructor", given: draftCourse(), when: uploadImage("go"), stream: "course-go",
			caller: domain.Actor{UserID: "other", Role: domain.Instructor}, err: course.ErrNotFound, kind: domain.NotFound},
		{name: "refuses a learner", given: draftCourse(), when: uploadImage("go"), stream: "course-go",
			caller: domain.Actor{UserID: "ada", Role: domain.Learner}, err: commands.ErrForbidden, kind: domain.Forbidden},
	})
}

func TestSetCourseImage(t *testing.T) {
	runCases(t, []commandCase{
		{name: "shows the variants of the pending upload", given: append(draftCourse(), uploadImage("go")), when: setImage("go"),
			stream: "course-go", then: []domain.Event{course.ImageSet{CourseID: "go", SHA256: upload.SHA256, Variants: variants, At: t1}}, id: "go"},
		{name: "refuses any caller: only EduTrack sets images", given: append(draftCourse(), uploadImage("go")), when: setImage("go"),
			stream: "course-go", caller: domain.Actor{UserID: "root", Role: domain.Admin}, err: commands.ErrForbidden, kind: domain.Forbidden},
	})
}
