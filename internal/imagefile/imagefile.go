// Package imagefile reads the images people upload and makes the variants EduTrack serves: it
// tells the format from the bytes, refuses what is not an image, what claims more pixels than
// allowed (before decoding it) and what is truncated or corrupt, turns the pixels upright by the
// EXIF orientation, and resizes and re-encodes them, which leaves every byte of metadata behind.
package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// Format is an image format EduTrack accepts.
type Format string

const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	GIF  Format = "gif"
	WebP Format = "webp"
)

// Errors of Inspect and Decode; each says what is wrong with the file, for the person who sent it.
var (
	ErrNotImage = errors.New("is not a JPEG, PNG, WebP or GIF image")
	// ErrTooManyPixels is wrapped with the dimensions the header claims.
	ErrTooManyPixels = errors.New("has too many pixels")
	// ErrCorrupt is wrapped with what the decoder found.
	ErrCorrupt = errors.New("is truncated or corrupt")
)

// Info is what an image's header says.
type Info struct {
	Format Format
	Width  int
	Height int
}

// Sniff tells the format from the first bytes, whatever any Content-Type says.
func Sniff(data []byte) (Format, bool) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, true
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF, true
	case len(data) >= 16 && string(data[0:4]) == "RIFF" && string(data[8:15]) == "WEBPVP8":
		return WebP, true
	}
	return "", false
}

type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// codecs are called by format, never through image.Decode's registry, so that what the bytes
// were sniffed as is what decodes them.
var codecs = map[Format]codec{
	JPEG: {jpeg.DecodeConfig, jpeg.Decode},
	PNG:  {png.DecodeConfig, png.Decode},
	GIF:  {gif.DecodeConfig, gif.Decode},
	WebP: {webp.DecodeConfig, webp.Decode},
}

// Inspect reads the header of data: its format and dimensions. It returns ErrNotImage, or
// ErrTooManyPixels when the header claims more than maxPixels, before any pixel is decoded.
func Inspect(data []byte, maxPixels int) (Info, error) {
	f, ok := Sniff(data)
	if !ok {
		return Info{}, ErrNotImage
	}
	cfg, err := codecs[f].config(bytes.NewReader(data))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s header: %v", ErrCorrupt, f, err)
	}
	info := Info{Format: f, Width: cfg.Width, Height: cfg.Height}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return info, fmt.Errorf("%w: %s header: %d×%d pixels", ErrCorrupt, f, cfg.Width, cfg.Height)
	}
	// Divided, not multiplied: 50,000 × 50,000 fits an int, but a header may claim more.
	if cfg.Width > maxPixels/cfg.Height {
		return info, fmt.Errorf("%w: %d×%d is more than %d megapixels", ErrTooManyPixels, cfg.Width, cfg.Height, maxPixels/1_000_000)
	}
	return info, nil
}

// Decode inspects data, then decodes its pixels (the first frame of a GIF). A truncated or
// corrupt file returns ErrCorrupt.
func Decode(data []byte, maxPixels int) (image.Image, Info, error) {
	info, err := Inspect(data, maxPixels)
	if err != nil {
		return nil, info, err
	}
	img, err := codecs[info.Format].decode(bytes.NewReader(data))
	if err != nil {
		return nil, info, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if b := img.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
		return nil, info, fmt.Errorf("%w: the header says %d×%d, the pixels are %d×%d", ErrCorrupt, info.Width, info.Height, b.Dx(), b.Dy())
	}
	return img, info, nil
}
