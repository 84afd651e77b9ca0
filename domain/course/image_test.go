package course_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
)

var (
	shaA, shaB, shaC = strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	uploadA          = course.ImageUpload{SHA256: shaA, Key: "originals/a", Format: "jpeg", Width: 4000, Height: 3000, Bytes: 1 << 20}
	uploadB          = course.ImageUpload{SHA256: shaB, Key: "originals/b", Format: "png", Width: 800, Height: 600, Bytes: 1 << 16}
	uploadC          = course.ImageUpload{SHA256: shaC, Key: "originals/c", Format: "gif", Width: 100, Height: 100, Bytes: 900}
	variantsA        = []course.ImageVariant{{Key: "v/a1280.webp", Format: "webp", Width: 1280, Height: 960}, {Key: "v/shared.jpg", Format: "jpeg", Width: 1280, Height: 960}}
	variantsB        = []course.ImageVariant{{Key: "v/b800.webp", Format: "webp", Width: 800, Height: 600}, {Key: "v/shared.jpg", Format: "jpeg", Width: 800, Height: 600}}
)

func uploaded(u course.ImageUpload, replaced ...string) course.ImageUploaded {
	return course.ImageUploaded{CourseID: id, SHA256: u.SHA256, Key: u.Key, Format: u.Format, Width: u.Width, Height: u.Height,
		Bytes: u.Bytes, Replaced: replaced, At: t1}
}

func set(sha string, vs []course.ImageVariant, replaced ...string) course.ImageSet {
	return course.ImageSet{CourseID: id, SHA256: sha, Variants: vs, Replaced: replaced, At: t2}
}

func TestUploadImage(t *testing.T) {
	upload := func(u course.ImageUpload) func(*course.Course) error {
		return func(c *course.Course) error { return c.UploadImage(u, t1) }
	}
	run(t, []testCase{
		{Name: "takes an image for a draft", Given: []domain.Event{created}, When: upload(uploadA), Then: []domain.Event{uploaded(uploadA)}},
		{Name: "records nothing for the image already pending", Given: []domain.Event{created, uploaded(uploadA)}, When: upload(uploadA)},
		{Name: "records nothing for the image already shown", Given: []domain.Event{created, uploaded(uploadA), set(shaA, variantsA)}, When: upload(uploadA)},
		{
			Name:  "supersedes a pending upload, whose original nothing uses any more",
			Given: []domain.Event{created, uploaded(uploadA)},
			When:  upload(uploadB),
			Then:  []domain.Event{uploaded(uploadB, "originals/a")},
		},
		{
			Name:  "takes the shown image again after another was uploaded",
			Given: []domain.Event{created, uploaded(uploadA), set(shaA, variantsA), uploaded(uploadB)},
			When:  upload(uploadA),
			Then:  []domain.Event{uploaded(uploadA, "originals/b")},
		},
		{Name: "rejects a course that does not exist", When: upload(uploadA), Err: course.ErrNotFound, Kind: domain.NotFound},
		{Name: "rejects an archived course", Given: []domain.Event{created, moduleAdded, published, archived}, When: upload(uploadA),
			Err: course.ErrArchived, Kind: domain.Conflict},
		{Name: "rejects an image of another format", Given: []domain.Event{created},
			When: upload(course.ImageUpload{SHA256: shaA, Key: "k", Format: "svg", Width: 1, Height: 1, Bytes: 1}), Kind: domain.Invalid, Field: "image"},
		{Name: "rejects a digest that is not one", Given: []domain.Event{created},
			When: upload(course.ImageUpload{SHA256: "abc", Key: "k", Format: "png", Width: 1, Height: 1, Bytes: 1}), Kind: domain.Invalid, Field: "image"},
	})
}

func TestSetImage(t *testing.T) {
	setImage := func(sha string, vs []course.ImageVariant) func(*course.Course) error {
		return func(c *course.Course) error { return c.SetImage(sha, vs, t2) }
	}
	run(t, []testCase{
		{Name: "shows the first image", Given: []domain.Event{created, uploaded(uploadA)}, When: setImage(shaA, variantsA),
			Then: []domain.Event{set(shaA, variantsA)}},
		{
			Name:  "replaces an image, listing the blobs the new one does not use",
			Given: []domain.Event{created, uploaded(uploadA), set(shaA, variantsA), uploaded(uploadB)},
			When:  setImage(shaB, variantsB),
			Then:  []domain.Event{set(shaB, variantsB, "originals/a", "v/a1280.webp")},
		},
		{Name: "records nothing when the same variants come again", Given: []domain.Event{created, uploaded(uploadA), set(shaA, variantsA)},
			When: setImage(shaA, variantsA)},
		{Name: "rejects the variants of an upload another superseded", Given: []domain.Event{created, uploaded(uploadA), uploaded(uploadB, "originals/a")},
			When: setImage(shaA, variantsA), Err: course.ErrImageReplaced, Kind: domain.Conflict},
		{Name: "rejects variants of no upload", Given: []domain.Event{created}, When: setImage(shaC, variantsA), Err: course.ErrImageReplaced, Kind: domain.Conflict},
		{Name: "rejects no variants", Given: []domain.Event{created, uploaded(uploadA)}, When: setImage(shaA, nil), Kind: domain.Invalid, Field: "variants"},
		{Name: "takes the variants of an image uploaded before the course was archived",
			Given: []domain.Event{created, moduleAdded, published, uploaded(uploadA), archived},
			When:  setImage(shaA, variantsA), Then: []domain.Event{set(shaA, variantsA)}},
	})
}

func TestImageKeys(t *testing.T) {
	c := course.New(id)
	for _, e := range []domain.Event{created, uploaded(uploadA), set(shaA, variantsA), uploaded(uploadC)} {
		c.Apply(e)
	}
	want := []string{"originals/a", "v/a1280.webp", "v/shared.jpg", "originals/c"}
	if diff := cmp.Diff(want, c.ImageKeys()); diff != "" {
		t.Fatalf("keys (-want +got):\n%s", diff)
	}
	if sha, ok := c.ImagePending(); !ok || sha != shaC {
		t.Fatalf("pending %q %v", sha, ok)
	}
}
