package imagefile

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	"image/jpeg"
	"slices"

	"github.com/gen2brain/webp"
	"golang.org/x/image/draw"
)

// Widths are the widths of the variants, the sizes a srcset offers.
var Widths = []int{320, 640, 1280}

// Quality of the encoded variants: what a photo on a course card needs, and no more.
const (
	jpegQuality = 82
	webpQuality = 75
	// webpMethod trades encoding time for size (0 fastest, 6 smallest); 4 is libwebp's default.
	webpMethod = 4
)

// Variant is one encoded size of an image.
type Variant struct {
	Format Format // JPEG or WebP
	Width  int
	Height int
	Data   []byte
}

// Variants decodes data and makes its variants: upright by the EXIF orientation, at each of
// Widths no wider than the upright image (a narrower image gets one variant at its own width in
// place of the widths above it), in WebP and JPEG, with no metadata. They are listed widest
// first, WebP before JPEG.
func Variants(data []byte, maxPixels int) ([]Variant, Info, error) {
	img, info, err := Decode(data, maxPixels)
	if err != nil {
		return nil, info, err
	}
	o := Orientation(1)
	if info.Format == JPEG {
		o = JPEGOrientation(data)
	}
	// Sizes are chosen upright, then scaled in the stored orientation, which is turned last,
	// on the smallest images.
	upW, upH := info.Width, info.Height
	if o.swaps() {
		upW, upH = upH, upW
	}
	widths := targetWidths(upW)
	out := make([]Variant, 0, 2*len(widths))
	var prev *image.RGBA // the last size made, stored orientation; the next is made from it
	for _, w := range widths {
		h := max(1, (upH*w+upW/2)/upW)
		sw, sh := w, h
		if o.swaps() {
			sw, sh = h, w
		}
		var scaled *image.RGBA
		if prev == nil {
			scaled = scale(img, sw, sh)
			img = nil // the decoded image is no longer needed: let it go before encoding
		} else {
			scaled = scale(prev, sw, sh)
		}
		prev = scaled
		up := Orient(scaled, o)
		vs, err := encode(up)
		if err != nil {
			return nil, info, err
		}
		out = append(out, vs...)
	}
	return out, info, nil
}

// targetWidths are Widths capped at width, widest first, without repeats.
func targetWidths(width int) []int {
	var ws []int
	for _, w := range slices.Backward(Widths) {
		w = min(w, width)
		if !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	return ws
}

// scale resizes src to w×h: first a box shrink by the largest whole factor that stays at or
// above the size (cheap, and it averages every pixel, so nothing aliases), then bilinear
// interpolation for the rest, less than a factor of two. Kernel filters over the full image
// (x/image/draw's Catmull-Rom) cost twice the time and a float64 buffer of four values per
// pixel of the intermediate image: over 100 MiB for a 12-megapixel photo.
func scale(src image.Image, w, h int) *image.RGBA {
	b := src.Bounds()
	if k := min(b.Dx()/w, b.Dy()/h); k >= 2 {
		src = boxShrink(src, k)
		b = src.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if b.Dx() == w && b.Dy() == h {
		stddraw.Draw(dst, dst.Bounds(), src, b.Min, stddraw.Src)
		return dst
	}
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// boxShrink averages each k×k block of src into one pixel. A YCbCr source (a JPEG) stays YCbCr,
// each plane shrunk on its own, so that it is never converted at full size.
func boxShrink(src image.Image, k int) image.Image {
	b := src.Bounds()
	w, h := b.Dx()/k, b.Dy()/k
	if y, ok := src.(*image.YCbCr); ok {
		dst := image.NewYCbCr(image.Rect(0, 0, w, h), y.SubsampleRatio)
		shrinkPlane(dst.Y, dst.YStride, w, h, y.Y[y.YOffset(b.Min.X, b.Min.Y):], y.YStride, k)
		cw, ch := chromaSize(dst)
		co := y.COffset(b.Min.X, b.Min.Y)
		shrinkPlane(dst.Cb, dst.CStride, cw, ch, y.Cb[co:], y.CStride, k)
		shrinkPlane(dst.Cr, dst.CStride, cw, ch, y.Cr[co:], y.CStride, k)
		return dst
	}
	rgba := toRGBA(src)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for c := 0; c < 4; c++ {
		shrinkChannel(dst.Pix[c:], dst.Stride, w, h, rgba.Pix[c:], rgba.Stride, k)
	}
	return dst
}

func chromaSize(y *image.YCbCr) (int, int) {
	r := y.Bounds()
	switch y.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		return (r.Dx() + 1) / 2, r.Dy()
	case image.YCbCrSubsampleRatio420:
		return (r.Dx() + 1) / 2, (r.Dy() + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return r.Dx(), (r.Dy() + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (r.Dx() + 3) / 4, r.Dy()
	case image.YCbCrSubsampleRatio410:
		return (r.Dx() + 3) / 4, (r.Dy() + 1) / 2
	}
	return r.Dx(), r.Dy()
}

// shrinkPlane writes the w×h averages of k×k blocks of the plane src into dst.
func shrinkPlane(dst []byte, dstStride, w, h int, src []byte, srcStride, k int) {
	sums := make([]uint32, w)
	n := uint32(k * k)
	for y := 0; y < h; y++ {
		clear(sums)
		for j := 0; j < k; j++ {
			row := src[(y*k+j)*srcStride:]
			for x := 0; x < w; x++ {
				var s uint32
				for _, v := range row[x*k : x*k+k] {
					s += uint32(v)
				}
				sums[x] += s
			}
		}
		out := dst[y*dstStride:]
		for x := range sums {
			out[x] = uint8((sums[x] + n/2) / n)
		}
	}
}

// shrinkChannel is shrinkPlane for one channel of interleaved 4-byte pixels.
func shrinkChannel(dst []byte, dstStride, w, h int, src []byte, srcStride, k int) {
	n := uint32(k * k)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s uint32
			for j := 0; j < k; j++ {
				row := src[(y*k+j)*srcStride+x*k*4:]
				for i := 0; i < k; i++ {
					s += uint32(row[4*i])
				}
			}
			dst[y*dstStride+4*x] = uint8((s + n/2) / n)
		}
	}
}

// encode makes the WebP and the JPEG of img. Neither writes metadata: what the original carried
// (EXIF with GPS, ICC, XMP, comments, anything appended) is not in the pixels.
func encode(img *image.RGBA) ([]Variant, error) {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	var wb bytes.Buffer
	if err := webp.Encode(&wb, img, webp.Options{Quality: webpQuality, Method: webpMethod}); err != nil {
		return nil, fmt.Errorf("encode WebP %d×%d: %w", w, h, err)
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, onWhite(img), &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, fmt.Errorf("encode JPEG %d×%d: %w", w, h, err)
	}
	return []Variant{{WebP, w, h, wb.Bytes()}, {JPEG, w, h, jb.Bytes()}}, nil
}

// onWhite lays an image with transparent pixels on white, for JPEG, which has no alpha: left
// as they are, the transparent pixels would turn black.
func onWhite(img *image.RGBA) image.Image {
	if img.Opaque() {
		return img
	}
	dst := image.NewRGBA(img.Bounds())
	stddraw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, stddraw.Src)
	stddraw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, stddraw.Over)
	return dst
}
