package projections_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
)

// A course's image in the catalog and the details: processing once uploaded, then its variants
// per format, narrowest first; a new upload is processing while still showing the image before.
func TestCourseImages(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.ok(w.cmds.RegisterUser(ctx, w.meta(), commands.RegisterUser{ID: "ada", Name: "Ada", Email: "ada@example.com", Role: "instructor"}))
	w.ok(w.cmds.CreateCourse(ctx, w.meta(), commands.CreateCourse{ID: "go", Title: "Go", Category: "c", Level: "beginner", InstructorID: "ada"}))
	up := func(sum string) {
		w.ok(w.cmds.UploadCourseImage(ctx, w.meta(), commands.UploadCourseImage{CourseID: "go", Image: course.ImageUpload{
			SHA256: sum, Key: "originals/courses/go/" + sum, Format: "jpeg", Width: 4000, Height: 3000, Bytes: 1000}}))
	}
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	up(a)
	store := openStore(t)
	run(t, w.log, store, cache.NewMemory(10))
	if img := get[documents.CourseDetail](t, store, documents.CourseDetails, "go").Image; img == nil || img.Status != "processing" || len(img.Formats) != 0 {
		t.Fatalf("after the upload: %+v", img)
	}
	v := func(f string, w, h int) course.ImageVariant {
		return course.ImageVariant{Key: "media/go." + f + string(rune('0'+w/320)) + ".x", Format: f, Width: w, Height: h}
	}
	w.ok(w.cmds.SetCourseImage(ctx, w.meta(), commands.SetCourseImage{CourseID: "go", SHA256: a,
		Variants: []course.ImageVariant{v("webp", 1280, 960), v("jpeg", 1280, 960), v("webp", 320, 240), v("jpeg", 320, 240)}}))
	up(b)
	store = openStore(t)
	run(t, w.log, store, cache.NewMemory(10))
	want := &documents.CourseImage{Status: "processing", Width: 1280, Height: 960, Formats: map[string][]documents.ImageSource{
		"webp": {{URL: "/media/go.webp1.x", Width: 320, Height: 240}, {URL: "/media/go.webp4.x", Width: 1280, Height: 960}},
		"jpeg": {{URL: "/media/go.jpeg1.x", Width: 320, Height: 240}, {URL: "/media/go.jpeg4.x", Width: 1280, Height: 960}},
	}}
	if diff := cmp.Diff(want, get[documents.CourseDetail](t, store, documents.CourseDetails, "go").Image); diff != "" {
		t.Errorf("details while the second image is processing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, get[documents.CatalogEntry](t, store, documents.Catalog, "go").Image); diff != "" {
		t.Errorf("catalog entry (-want +got):\n%s", diff)
	}
	body := []byte(`{"image":{"formats":{"webp":[{"url":"/media/go.x.webp"}]}},"description":"say \"url\":\"/media/x"}`)
	if got := string(documents.MediaURLs(body, "https://cdn.example/m/")); got != `{"image":{"formats":{"webp":[{"url":"https://cdn.example/m/go.x.webp"}]}},"description":"say \"url\":\"/media/x"}` {
		t.Errorf("MediaURLs: %s", got)
	}
}
