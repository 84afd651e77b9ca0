package course

import (
	"slices"
	"time"

	"github.com/edutrack/edutrack/domain"
)

// A course's image: the uploaded original waits for its variants (the sizes and formats a
// screen asks for), which a job makes; ImageSet then puts them in place of the image before.
// Blobs are named by their content, so the events carry keys and the domain only tracks which
// keys an image uses, to say which ones a new image leaves unused.

// ImageUpload is an original image as stored, before any variant is made of it.
type ImageUpload struct {
	// SHA256 is the hex digest of the original's bytes; it names the upload.
	SHA256 string
	// Key is where the original is stored.
	Key    string
	Format string
	Width  int
	Height int
	Bytes  int64
}

// ImageVariant is one stored size and format of an image.
type ImageVariant struct {
	Key    string `json:"key"`
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// ImageUploaded: a new image for the course was stored, and waits for its variants.
type ImageUploaded struct {
	CourseID string `json:"courseId"`
	SHA256   string `json:"sha256"`
	Key      string `json:"key"`
	Format   string `json:"format"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Bytes    int64  `json:"bytes"`
	// Replaced lists the blobs of an earlier upload that this one supersedes before its
	// variants were made: nothing uses them any more.
	Replaced []string  `json:"replaced,omitempty"`
	At       time.Time `json:"at"`
}

// ImageSet: the variants of the uploaded image are stored; the course shows them from now on.
type ImageSet struct {
	CourseID string         `json:"courseId"`
	SHA256   string         `json:"sha256"`
	Variants []ImageVariant `json:"variants"`
	// Replaced lists the blobs of the image before (its original and variants) that the new
	// one does not use; they can be deleted once no page or CDN still needs them.
	Replaced []string  `json:"replaced,omitempty"`
	At       time.Time `json:"at"`
}

func (ImageUploaded) EventType() string { return "course.image_uploaded.v1" }
func (ImageSet) EventType() string      { return "course.image_set.v1" }

// ErrImageReplaced is returned by SetImage when another image was uploaded after the one the
// variants were made of.
var ErrImageReplaced = domain.Errorf(domain.Conflict, "another image was uploaded since")

// image is the course's image state: the upload that waits for its variants, and the image
// shown.
type image struct {
	pending  *ImageUpload
	current  *ImageUpload // the original of the image shown
	variants []ImageVariant
}

// keys are the blobs the image uses.
func (i image) keys() []string {
	var ks []string
	if i.current != nil {
		ks = append(ks, i.current.Key)
	}
	for _, v := range i.variants {
		ks = append(ks, v.Key)
	}
	if i.pending != nil {
		ks = append(ks, i.pending.Key)
	}
	return ks
}

// ImageKeys lists the blobs the course's image uses now: the shown image's original and
// variants, and an upload that waits for its variants.
func (c *Course) ImageKeys() []string { return c.image.keys() }

// ImagePending reports whether an uploaded image waits for its variants, and its digest.
func (c *Course) ImagePending() (sha256 string, ok bool) {
	if c.image.pending == nil {
		return "", false
	}
	return c.image.pending.SHA256, true
}

// UploadImage takes u as the course's next image; its variants are still to be made. Uploading
// the image that is already pending, or shown with none pending, changes nothing. It returns
// ErrNotFound, ErrArchived, or an Invalid error on "image".
func (c *Course) UploadImage(u ImageUpload, at time.Time) error {
	if err := c.checkChangeable(); err != nil {
		return err
	}
	if !validDigest(u.SHA256) || u.Key == "" || u.Width <= 0 || u.Height <= 0 || u.Bytes <= 0 ||
		!slices.Contains([]string{"jpeg", "png", "gif", "webp"}, u.Format) {
		return domain.Invalidf("image", "must be a stored JPEG, PNG, WebP or GIF image")
	}
	switch {
	case c.image.pending != nil && c.image.pending.SHA256 == u.SHA256:
		return nil
	case c.image.pending == nil && c.image.current != nil && c.image.current.SHA256 == u.SHA256:
		return nil
	}
	var replaced []string
	if p := c.image.pending; p != nil && p.Key != u.Key && (c.image.current == nil || c.image.current.Key != p.Key) {
		replaced = []string{p.Key}
	}
	c.record(ImageUploaded{CourseID: c.id, SHA256: u.SHA256, Key: u.Key, Format: u.Format, Width: u.Width, Height: u.Height,
		Bytes: u.Bytes, Replaced: replaced, At: at})
	return nil
}

// SetImage shows the variants made of the pending upload sha256. Setting the image already
// shown changes nothing. It returns ErrNotFound, ErrImageReplaced when another image was
// uploaded since, or an Invalid error on "variants". An archived course still takes the variants
// of an image uploaded before it was archived: they are what it was meant to show.
func (c *Course) SetImage(sha256 string, variants []ImageVariant, at time.Time) error {
	if !c.Exists() {
		return ErrNotFound
	}
	if c.image.pending == nil || c.image.pending.SHA256 != sha256 {
		if c.image.pending == nil && c.image.current != nil && c.image.current.SHA256 == sha256 {
			return nil
		}
		return ErrImageReplaced
	}
	if len(variants) == 0 {
		return domain.Invalidf("variants", "must list at least one variant")
	}
	for _, v := range variants {
		if v.Key == "" || v.Width <= 0 || v.Height <= 0 || (v.Format != "jpeg" && v.Format != "webp") {
			return domain.Invalidf("variants", "each must have a key, a size and the format jpeg or webp")
		}
	}
	next := image{current: c.image.pending, variants: variants}
	keep := next.keys()
	var replaced []string
	for _, k := range (image{current: c.image.current, variants: c.image.variants}).keys() {
		if !slices.Contains(keep, k) && !slices.Contains(replaced, k) {
			replaced = append(replaced, k)
		}
	}
	c.record(ImageSet{CourseID: c.id, SHA256: sha256, Variants: slices.Clone(variants), Replaced: replaced, At: at})
	return nil
}

func (c *Course) applyImage(e domain.Event) {
	switch e := e.(type) {
	case ImageUploaded:
		c.image.pending = &ImageUpload{SHA256: e.SHA256, Key: e.Key, Format: e.Format, Width: e.Width, Height: e.Height, Bytes: e.Bytes}
	case *ImageUploaded:
		if e != nil {
			c.applyImage(*e)
		}
	case ImageSet:
		if c.image.pending != nil && c.image.pending.SHA256 == e.SHA256 {
			c.image.current = c.image.pending
		}
		c.image.pending = nil
		c.image.variants = e.Variants
	case *ImageSet:
		if e != nil {
			c.applyImage(*e)
		}
	}
}

// validDigest reports whether s is a SHA-256 in lower-case hex.
func validDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}
