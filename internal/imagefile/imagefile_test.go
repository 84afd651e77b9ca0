package imagefile_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"strings"
	"testing"

	"golang.org/x/image/webp"

	"github.com/edutrack/edutrack/internal/imagefile"
	"github.com/edutrack/edutrack/internal/imagefile/imagefiletest"
)

const maxPixels = 40_000_000

func TestInspectRefusesWhatIsNoImage(t *testing.T) {
	photo := imagefiletest.JPEG(imagefiletest.Picture(64, 48))
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"an empty file", nil, imagefile.ErrNotImage},
		{"text", []byte("<html><script>alert(1)</script></html>"), imagefile.ErrNotImage},
		{"a zip", zipOf(t), imagefile.ErrNotImage},
		{"a PNG header claiming 50,000 by 50,000", imagefiletest.PNGBomb(50_000, 50_000), imagefile.ErrTooManyPixels},
		{"a JPEG cut after its header", photo[:200], imagefile.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := imagefile.Decode(tc.data, maxPixels)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTheBombIsRefusedBeforeAnyPixelIsDecoded(t *testing.T) {
	bomb := imagefiletest.PNGBomb(50_000, 50_000)
	allocs := testing.AllocsPerRun(5, func() { imagefile.Decode(bomb, maxPixels) })
	var info imagefile.Info
	var err error
	bytesAlloc := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			info, err = imagefile.Inspect(bomb, maxPixels)
		}
	}).AllocedBytesPerOp()
	if !errors.Is(err, imagefile.ErrTooManyPixels) || info.Width != 50_000 {
		t.Fatalf("Inspect: %+v, %v", info, err)
	}
	if !strings.Contains(err.Error(), "50000×50000") {
		t.Errorf("the error %q does not say what the header claims", err)
	}
	// 10 GB of pixels were claimed; refusing costs a few kilobytes.
	if bytesAlloc > 64<<10 {
		t.Errorf("refusing the bomb allocated %d bytes per call (%v allocations)", bytesAlloc, allocs)
	}
}

func TestATruncatedImageIsCorrupt(t *testing.T) {
	for name, data := range map[string][]byte{
		"jpeg": imagefiletest.JPEG(imagefiletest.Picture(640, 480)),
		"png":  imagefiletest.PNG(imagefiletest.Picture(640, 480)),
	} {
		t.Run(name, func(t *testing.T) {
			cut := data[:len(data)*2/3]
			if _, err := imagefile.Inspect(cut, maxPixels); err != nil {
				t.Fatalf("the header alone is fine, Inspect says %v", err)
			}
			if _, _, err := imagefile.Decode(cut, maxPixels); !errors.Is(err, imagefile.ErrCorrupt) {
				t.Fatalf("Decode of the first two thirds: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestSniffIgnoresTheNameAndTrustsTheBytes(t *testing.T) {
	for want, data := range map[imagefile.Format][]byte{
		imagefile.JPEG: imagefiletest.JPEG(imagefiletest.Picture(8, 8)),
		imagefile.PNG:  imagefiletest.PNG(imagefiletest.Picture(8, 8)),
		imagefile.GIF:  []byte("GIF89a..."),
		imagefile.WebP: []byte("RIFF\x00\x00\x00\x00WEBPVP8L...."),
	} {
		if got, ok := imagefile.Sniff(data); !ok || got != want {
			t.Errorf("Sniff: %q %v, want %q", got, ok, want)
		}
	}
}

func TestVariantsOfAPhoto(t *testing.T) {
	// 1600×1200 as stored, sideways: upright it is 1200 wide, 1600 high.
	photo := imagefiletest.Photo(1600, 1200)
	if o := imagefile.JPEGOrientation(photo); o != 6 {
		t.Fatalf("orientation %d, want 6", o)
	}
	if !bytes.Contains(photo, []byte(imagefiletest.GPSMark)) {
		t.Fatal("the test photo carries no GPS")
	}
	vs, info, err := imagefile.Variants(photo, maxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if info.Width != 1600 || info.Format != imagefile.JPEG {
		t.Fatalf("info %+v", info)
	}
	type size struct {
		f    imagefile.Format
		w, h int
	}
	var got []size
	for _, v := range vs {
		got = append(got, size{v.Format, v.Width, v.Height})
		if bytes.Contains(v.Data, []byte(imagefiletest.GPSMark)) || bytes.Contains(v.Data, []byte("Exif")) {
			t.Errorf("%s %d carries the EXIF of the original", v.Format, v.Width)
		}
		var img image.Image
		if v.Format == imagefile.JPEG {
			img, err = jpeg.Decode(bytes.NewReader(v.Data))
			if segs := appSegments(v.Data); len(segs) > 0 {
				t.Errorf("JPEG %d has application segments %x", v.Width, segs)
			}
		} else {
			img, err = webp.Decode(bytes.NewReader(v.Data))
			if bytes.Contains(v.Data, []byte("EXIF")) || bytes.Contains(v.Data, []byte("XMP ")) {
				t.Errorf("WebP %d has metadata chunks", v.Width)
			}
		}
		if err != nil {
			t.Fatalf("%s %d does not decode: %v", v.Format, v.Width, err)
		}
		if b := img.Bounds(); b.Dx() != v.Width || b.Dy() != v.Height {
			t.Errorf("%s says %d×%d, is %v", v.Format, v.Width, v.Height, b)
		}
		// Upright, the red quarter of the stored picture (its top left) is at the top right.
		r, g, b, _ := img.At(v.Width*3/4, v.Height/8).RGBA()
		if r>>8 < 150 || g>>8 > 100 || b>>8 > 100 {
			t.Errorf("%s %d: the top right is %d,%d,%d, not red: the photo was not turned upright", v.Format, v.Width, r>>8, g>>8, b>>8)
		}
	}
	want := []size{{"webp", 1200, 1600}, {"jpeg", 1200, 1600}, {"webp", 640, 853}, {"jpeg", 640, 853}, {"webp", 320, 427}, {"jpeg", 320, 427}}
	if !equal(got, want) {
		t.Fatalf("variants %v, want %v", got, want)
	}
}

func TestVariantsNeverUpscale(t *testing.T) {
	vs, _, err := imagefile.Variants(imagefiletest.PNG(imagefiletest.Picture(500, 250)), maxPixels)
	if err != nil {
		t.Fatal(err)
	}
	var widths []int
	for _, v := range vs {
		widths = append(widths, v.Width)
	}
	if want := []int{500, 500, 320, 320}; !equal(widths, want) {
		t.Fatalf("widths %v, want %v", widths, want)
	}
}

func TestThePolyglotLosesItsArchive(t *testing.T) {
	poly := imagefiletest.Polyglot(imagefiletest.JPEG(imagefiletest.Picture(800, 600)), "<script>alert(1)</script>")
	if _, err := zip.NewReader(bytes.NewReader(poly), int64(len(poly))); err != nil {
		t.Fatalf("the polyglot is no ZIP: %v", err)
	}
	vs, _, err := imagefile.Variants(poly, maxPixels)
	if err != nil {
		t.Fatalf("the polyglot is a valid JPEG too, and is taken as one: %v", err)
	}
	for _, v := range vs {
		if _, err := zip.NewReader(bytes.NewReader(v.Data), int64(len(v.Data))); err == nil {
			t.Errorf("%s %d is still a ZIP", v.Format, v.Width)
		}
		if bytes.Contains(v.Data, []byte("alert(1)")) || bytes.Contains(v.Data, []byte("PK\x03\x04")) {
			t.Errorf("%s %d carries the archive", v.Format, v.Width)
		}
	}
}

func TestOrientationsTurnTheCorners(t *testing.T) {
	// A 3×2 image whose pixel at x,y has red x and green y.
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for y := 0; y < 2; y++ {
		for x := 0; x < 3; x++ {
			src.Pix[src.PixOffset(x, y)] = uint8(x)
			src.Pix[src.PixOffset(x, y)+1] = uint8(y)
		}
	}
	// where the stored top-left pixel (0,0) ends up, and the upright size
	for o, want := range map[imagefile.Orientation][3]int{
		1: {0, 0, 3}, 2: {2, 0, 3}, 3: {2, 1, 3}, 4: {0, 1, 3}, 5: {0, 0, 2}, 6: {1, 0, 2}, 7: {1, 2, 2}, 8: {0, 2, 2},
	} {
		dst := imagefile.Orient(src, o)
		if dst.Bounds().Dx() != want[2] {
			t.Errorf("orientation %d: width %d, want %d", o, dst.Bounds().Dx(), want[2])
		}
		i := dst.PixOffset(want[0], want[1])
		if dst.Pix[i] != 0 || dst.Pix[i+1] != 0 {
			t.Errorf("orientation %d: the stored top-left pixel is not at %d,%d", o, want[0], want[1])
		}
	}
}

func TestABrokenEXIFLeavesThePictureAsStored(t *testing.T) {
	photo := imagefiletest.Photo(64, 48)
	for i := 0; i < 200; i++ { // every cut of the EXIF segment
		cut := append(append([]byte{}, photo[:4]...), photo[4:4+i]...)
		if o := imagefile.JPEGOrientation(cut); o != 1 && o != 6 {
			t.Fatalf("cut at %d: orientation %d", i, o)
		}
	}
}

func zipOf(t *testing.T) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	f, _ := zw.Create("a.txt")
	f.Write([]byte("hello"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appSegments lists the APPn markers of a JPEG before its first scan.
func appSegments(data []byte) []byte {
	var out []byte
	for i := 2; i+4 <= len(data) && data[i] == 0xFF; {
		m := data[i+1]
		if m == 0xDA {
			break
		}
		if m >= 0xE0 && m <= 0xEF {
			out = append(out, m)
		}
		i += 2 + (int(data[i+2])<<8 | int(data[i+3]))
	}
	return out
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
