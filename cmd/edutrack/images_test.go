package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/image/webp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/imagefile/imagefiletest"
	"github.com/edutrack/edutrack/internal/tests3"
)

// courseImage is the image of a course as the read API answers it.
type courseImage struct {
	Status  string `json:"status"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Formats map[string][]struct {
		URL    string `json:"url"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	} `json:"formats"`
}

// imageOf reads course id's image at minPosition pos.
func imageOf(t *testing.T, s *server, id string, pos uint64) *courseImage {
	t.Helper()
	a := get(t, s, "/v1/courses/"+id+"?minPosition="+itoa(pos))
	var d struct {
		Image *courseImage `json:"image"`
	}
	if err := json.Unmarshal(a.body, &d); err != nil || a.status != http.StatusOK {
		t.Fatalf("GET course %s: %d %s (%v)", id, a.status, a.body, err)
	}
	return d.Image
}

// waitImage waits until course id's image is ready, and returns it.
func waitImage(t *testing.T, s *server, id string, pos uint64) *courseImage {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if img := imageOf(t, s, id, pos); img != nil && img.Status == "ready" {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("course %s: no image ready after 60s\n%s", id, s.logs)
		}
	}
}

func putImage(s *server, courseID, sub string, role domain.Role, body []byte) reply {
	s.t.Helper()
	// The Content-Type lies on purpose: the type is read from the bytes.
	return s.send("PUT", "/v1/courses/"+courseID+"/image", "text/plain", body, "Authorization", bearer(sub, role))
}

// problemField checks a refusal: its status, problem+json, and the field it names.
func problemField(t *testing.T, r reply, status int, what string) {
	t.Helper()
	var p struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	}
	if r.status != status || r.contentType != "application/problem+json" || json.Unmarshal(r.body, &p) != nil || (status != http.StatusNotFound && p.Field != "image") {
		t.Errorf("%s: %d %s %s; want %d problem+json naming the image", what, r.status, r.contentType, r.body, status)
	}
}

// checkVariants checks an image made of a photo of stored size w×h and EXIF orientation 6:
// upright, each variant served by GET /media as the read model says, with no GPS left, cached
// for a year, revalidated and ranged. It returns the URLs.
func checkVariants(t *testing.T, s *server, img *courseImage, w, h int, urlBase string) []string {
	t.Helper()
	upW, upH := h, w
	if img.Width != 1280 || img.Height != (upH*1280+upW/2)/upW {
		t.Errorf("image %d×%d; want 1280 wide, upright", img.Width, img.Height)
	}
	var urls []string
	for _, f := range []string{"webp", "jpeg"} {
		srcs := img.Formats[f]
		if len(srcs) != 3 {
			t.Fatalf("%s: %d variants; want 320, 640 and 1280: %+v", f, len(srcs), img.Formats)
		}
		for i, want := range []int{320, 640, 1280} {
			v := srcs[i]
			if v.Width != want || v.Height != (upH*want+upW/2)/upW {
				t.Errorf("%s variant %d: %d×%d", f, i, v.Width, v.Height)
			}
			if !strings.HasPrefix(v.URL, urlBase) {
				t.Fatalf("%s variant url %q; want it under %q", f, v.URL, urlBase)
			}
			path := "/media/" + strings.TrimPrefix(v.URL, urlBase)
			urls = append(urls, path)
			a := get(t, s, path, "Accept-Encoding", "identity")
			sum := sha256.Sum256(a.body)
			etag := `"` + hex.EncodeToString(sum[:]) + `"`
			ctype := map[string]string{"webp": "image/webp", "jpeg": "image/jpeg"}[f]
			if a.status != http.StatusOK || a.header.Get("Content-Type") != ctype || a.header.Get("ETag") != etag ||
				a.header.Get("Cache-Control") != "public, max-age=31536000, immutable" || a.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("GET %s: %d %v", path, a.status, a.header)
			}
			var decoded image.Image
			var err error
			if f == "webp" {
				decoded, err = webp.Decode(bytes.NewReader(a.body))
			} else {
				decoded, err = jpeg.Decode(bytes.NewReader(a.body))
			}
			if err != nil || decoded.Bounds().Dx() != v.Width || decoded.Bounds().Dy() != v.Height {
				t.Fatalf("GET %s: not a %d×%d %s (%v)", path, v.Width, v.Height, f, err)
			}
			if bytes.Contains(a.body, []byte(imagefiletest.GPSMark)) || bytes.Contains(a.body, []byte("Exif")) {
				t.Errorf("GET %s: the variant carries the photo's EXIF", path)
			}
			// the stored picture's red top-left is the upright one's top-right
			if r, g, _, _ := decoded.At(v.Width*3/4, v.Height/8).RGBA(); r>>8 < 150 || g>>8 > 100 {
				t.Errorf("GET %s: not turned upright", path)
			}
			if b := get(t, s, path, "If-None-Match", etag); b.status != http.StatusNotModified || len(b.body) != 0 {
				t.Errorf("GET %s with its ETag: %d, %d bytes; want 304", path, b.status, len(b.body))
			}
			b := get(t, s, path, "Range", "bytes=10-109", "Accept-Encoding", "identity")
			if b.status != http.StatusPartialContent || !bytes.Equal(b.body, a.body[10:110]) || b.header.Get("ETag") != etag {
				t.Errorf("GET %s bytes 10-109: %d, %d bytes %v; want 206 and those 100 bytes", path, b.status, len(b.body), b.header)
			}
		}
	}
	return urls
}

// A course image through the API: refused when it is no image, a bomb, truncated or too
// large, with nothing recorded; taken with 202, processing at the answer's position, then
// ready in three widths and two formats, served by GET /media.
func TestServeCourseImages(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s := launch(t, dir, &logTracker{}, map[string]string{"EDUTRACK_IMAGE_MAX_BYTES": "3000000"}, func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ins2", "Alan Turing", "instructor")), created, 1)
	before := s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)

	const w, h = 2000, 1500
	photo := imagefiletest.Photo(w, h)
	problemField(t, putImage(s, "go", "ins2", domain.Instructor, photo), http.StatusNotFound, "another instructor's upload")
	problemField(t, putImage(s, "nope", "ins", domain.Instructor, photo), http.StatusNotFound, "an upload to no course")
	if r := putImage(s, "go", "ada", domain.Learner, photo); r.status != http.StatusForbidden {
		t.Errorf("a learner's upload: %d; want 403", r.status)
	}
	problemField(t, putImage(s, "go", "ins", domain.Instructor, imagefiletest.PNGBomb(50_000, 50_000)), http.StatusUnprocessableEntity, "a 50,000×50,000 PNG")
	problemField(t, putImage(s, "go", "ins", domain.Instructor, photo[:len(photo)/2]), http.StatusUnprocessableEntity, "a truncated JPEG")
	problemField(t, putImage(s, "go", "ins", domain.Instructor, []byte("PK\x03\x04 not a picture")), http.StatusUnsupportedMediaType, "a ZIP")
	problemField(t, putImage(s, "go", "ins", domain.Instructor, make([]byte, 3000001)), http.StatusRequestEntityTooLarge, "3 MB and one byte")
	if img := imageOf(t, s, "go", before.Position); img != nil {
		t.Fatalf("after the refusals the course has an image: %+v", img)
	}

	// A polyglot, a JPEG that is a ZIP too, is taken as the JPEG it is, and served re-encoded.
	// It appends the one event right after the course's: the refusals appended nothing.
	up := s.ok(putImage(s, "go", "ins", domain.Instructor, imagefiletest.Polyglot(photo, "<script>alert(1)</script>")), http.StatusAccepted, 1)
	if img := imageOf(t, s, "go", up.Position); img == nil || (img.Status != "processing" && img.Status != "ready") {
		t.Fatalf("at the upload's position the image is %+v; want processing (or ready)", img)
	}
	img := waitImage(t, s, "go", up.Position)
	checkVariants(t, s, img, w, h, "/media/")

	for _, path := range []string{"/media/originals/courses/go/" + strings.Repeat("0", 64), "/media/../blobs/jwt.key", "/media/courses/go/x.jpg"} {
		if a := get(t, s, path); a.status != http.StatusNotFound {
			t.Errorf("GET %s: %d; want 404", path, a.status)
		}
	}
	s.stop()
}

// On S3, with EDUTRACK_MEDIA_BASE_URL: the variants are in the bucket under media/, the read
// models point at the CDN, and GET /media serves the same keys from the bucket.
func TestServeCourseImagesOnS3(t *testing.T) {
	t.Parallel()
	b := tests3.NewBucket(t)
	dir := filepath.Join(t.TempDir(), "data")
	env := s3Env(b)
	env["EDUTRACK_MEDIA_BASE_URL"] = "https://cdn.school.example/edutrack/media/"
	s := launch(t, dir, &logTracker{}, env, func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	const w, h = 1800, 1400 // upright 1400 wide: the widest variant is 1280
	up := s.ok(putImage(s, "go", "ins", domain.Instructor, imagefiletest.Photo(w, h)), http.StatusAccepted, 1)
	img := waitImage(t, s, "go", up.Position)
	urls := checkVariants(t, s, img, w, h, "https://cdn.school.example/edutrack/media/")
	// The catalog carries the same image.
	a := get(t, s, "/v1/courses?minPosition="+itoa(up.Position))
	var page struct {
		Items []struct {
			Image *courseImage `json:"image"`
		} `json:"items"`
	}
	if err := json.Unmarshal(a.body, &page); err != nil || len(page.Items) != 1 || page.Items[0].Image == nil ||
		page.Items[0].Image.Formats["webp"][2].URL != img.Formats["webp"][2].URL {
		t.Fatalf("the catalog: %s (%v)", a.body, err)
	}
	if n := countObjects(t, b, "media/go."); n != len(urls) {
		t.Errorf("%d objects under media/go. in the bucket; want the %d variants", n, len(urls))
	}
	if n := countObjects(t, b, "originals/courses/go/"); n != 1 {
		t.Errorf("%d originals in the bucket; want 1", n)
	}
	s.stop()
}

// countObjects counts the objects of bucket b under prefix.
func countObjects(t *testing.T, b tests3.Bucket, prefix string) int {
	t.Helper()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := s3.New(s3.Options{Region: tests3.Region, BaseEndpoint: aws.String(b.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, ""), HTTPClient: &http.Client{Transport: transport}})
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(b.Name), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	return len(out.Contents)
}
