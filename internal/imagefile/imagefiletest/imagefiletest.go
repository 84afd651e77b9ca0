// Package imagefiletest makes the images the tests of uploads need: real files, generated, some
// of them hostile.
package imagefiletest

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// GPSMark is written into the EXIF of Photo as the GPS map datum, so that a test can look for it
// in what was made of the photo.
const GPSMark = "EDUTRACK-GPS-DATUM"

// Picture is a w×h picture with detail everywhere (gradients and a pattern), so that encoders
// and filters work as on a photo. Its top-left quarter is red, its top-right green, its bottom
// blue-ish, which tells how a variant was turned.
func Picture(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var c color.RGBA
			switch {
			case y < h/2 && x < w/2:
				c = color.RGBA{220, uint8(x * 40 / w), uint8((x ^ y) & 31), 255}
			case y < h/2:
				c = color.RGBA{uint8((x ^ y) & 31), 200, uint8(y * 40 / h), 255}
			default:
				c = color.RGBA{uint8((x * y) & 31), uint8(x * 60 / w), 210, 255}
			}
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			img.Y[img.YOffset(x, y)] = yy
			ci := img.COffset(x, y)
			img.Cb[ci], img.Cr[ci] = cb, cr
		}
	}
	return img
}

// JPEG encodes img at quality 90.
func JPEG(img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// PNG encodes img.
func PNG(img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// Photo is a JPEG of a w×h picture stored as a camera held sideways stores it: its EXIF says
// orientation 6 (turn it a quarter clockwise to show it), and carries a GPS position with
// GPSMark as its datum.
func Photo(w, h int) []byte {
	return WithEXIF(JPEG(Picture(w, h)), 6)
}

// WithEXIF inserts an APP1 EXIF segment after the SOI of a JPEG: IFD0 with the orientation and
// a pointer to a GPS IFD (latitude 48°51'24"N, longitude 2°21'3"E, the map datum GPSMark).
func WithEXIF(jpg []byte, orientation uint16) []byte {
	le := binary.LittleEndian
	var t []byte
	u16 := func(v uint16) { t = le.AppendUint16(t, v) }
	u32 := func(v uint32) { t = le.AppendUint32(t, v) }
	entry := func(tag, typ uint16, count, value uint32) { u16(tag); u16(typ); u32(count); u32(value) }
	t = append(t, 'I', 'I')
	u16(42)
	u32(8)
	// IFD0 at 8: two entries, then the offset of the next IFD (none).
	const ifd0Len = 2 + 2*12 + 4
	gpsIFD := uint32(8 + ifd0Len)
	u16(2)
	entry(0x0112, 3, 1, uint32(orientation))
	entry(0x8825, 4, 1, gpsIFD)
	u32(0)
	// GPS IFD: five entries; its values that do not fit four bytes follow it.
	const gpsLen = 2 + 5*12 + 4
	values := gpsIFD + gpsLen
	lat, lon, datum := values, values+24, values+48
	u16(5)
	entry(0x0001, 2, 2, uint32('N'))
	entry(0x0002, 5, 3, lat)
	entry(0x0003, 2, 2, uint32('E'))
	entry(0x0004, 5, 3, lon)
	entry(0x0012, 2, uint32(len(GPSMark)+1), datum)
	u32(0)
	for _, r := range [][2]uint32{{48, 1}, {51, 1}, {24, 1}, {2, 1}, {21, 1}, {3, 1}} {
		u32(r[0])
		u32(r[1])
	}
	t = append(t, GPSMark...)
	t = append(t, 0)
	seg := append([]byte("Exif\x00\x00"), t...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// PNGBomb is a small PNG whose header claims w×h pixels: its one IDAT holds a few rows only, so
// a decoder that trusts the header allocates w×h×4 bytes before it finds out.
func PNGBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	chunk("IHDR", ihdr)
	// a zlib stream of nothing: not even one row
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// Polyglot is a file that is a valid JPEG and a valid ZIP at once: the JPEG, then a ZIP archive
// whose one file is script. (ZIP readers find the archive from the end, JPEG readers from the
// start.)
func Polyglot(jpg []byte, script string) []byte {
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	f, err := zw.Create("payload.html")
	if err != nil {
		panic(err)
	}
	f.Write([]byte(script))
	if err := zw.Close(); err != nil {
		panic(err)
	}
	// Offsets in the ZIP count from its own start; a reader of the whole file copes (it finds
	// the central directory from the end and the records by the difference), as unzip does.
	out := append([]byte{}, jpg...)
	return append(out, z.Bytes()...)
}
