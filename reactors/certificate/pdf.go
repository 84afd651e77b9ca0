package certificate

import (
	"bytes"
	"fmt"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/text/encoding/charmap"
)

// Content is what a certificate shows.
type Content struct {
	CertificateID   string
	LearnerName     string
	CourseTitle     string
	Instructor      string
	CompletedAt     time.Time
	VerificationURL string
}

// Render lays out the certificate as a one-page A4 PDF. The same content gives the same bytes,
// and so the same SHA-256: the document's dates are the completion's, never the time it is
// rendered, and its catalogs are sorted. compress is false only in tests, which read the text.
//
// Text that Windows-1252 can write (most Latin-script names) is set in the core Helvetica,
// which costs the PDF nothing to carry. Other text (Łukasiewicz, Дмитриева, Αλέξης) is set in the
// Go fonts, embedded as the subset used, so that it prints as written; rendering then takes six
// to nine times as long, 16-26 ms against 2.8 (BenchmarkRender). Scripts the Go fonts lack
// (Chinese, Arabic, ...) print as blanks.
func Render(c Content, compress bool) ([]byte, error) {
	pdf := fpdf.New("L", "mm", "A4", "")
	at := c.CompletedAt.UTC()
	pdf.SetCreationDate(at)
	pdf.SetModificationDate(at)
	pdf.SetCatalogSort(true)
	pdf.SetCompression(compress)
	pdf.SetProducer("EduTrack", false)
	pdf.SetCreator("EduTrack", false)
	pdf.SetTitle("Certificate of completion: "+c.CourseTitle, true)
	pdf.SetAuthor("EduTrack", false)
	pdf.SetAutoPageBreak(false, 0)
	font, tr := "Helvetica", pdf.UnicodeTranslatorFromDescriptor("") // Windows-1252, the core fonts' encoding
	if !windows1252(c.LearnerName, c.CourseTitle, c.Instructor, c.CertificateID, c.VerificationURL) {
		font, tr = "go", func(s string) string { return s }
		pdf.AddUTF8FontFromBytes(font, "", goregular.TTF)
		pdf.AddUTF8FontFromBytes(font, "B", gobold.TTF)
	}
	pdf.AddPage()

	w, h := pdf.GetPageSize()
	pdf.SetDrawColor(40, 70, 120)
	pdf.SetLineWidth(1.5)
	pdf.Rect(10, 10, w-20, h-20, "D")
	pdf.SetLineWidth(0.4)
	pdf.Rect(14, 14, w-28, h-28, "D")

	line := func(y float64, style string, size float64, text string) {
		pdf.SetFont(font, style, size)
		pdf.SetXY(20, y)
		pdf.CellFormat(w-40, size*0.5, tr(text), "", 0, "C", false, 0, "")
	}
	pdf.SetTextColor(40, 70, 120)
	line(38, "B", 34, "Certificate of Completion")
	pdf.SetTextColor(0, 0, 0)
	line(62, "", 14, "This certifies that")
	line(76, "B", 28, c.LearnerName)
	line(96, "", 14, "has completed the course")
	line(110, "B", 22, c.CourseTitle)
	line(128, "", 13, "taught by "+c.Instructor)
	line(140, "", 13, "on "+at.Format("2 January 2006"))

	pdf.SetTextColor(80, 80, 80)
	line(168, "", 10, "Certificate "+c.CertificateID)
	line(175, "", 10, "Verify it at "+c.VerificationURL)

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("write the PDF: %w", err)
	}
	return buf.Bytes(), nil
}

// windows1252 reports whether Windows-1252 can write every one of texts.
func windows1252(texts ...string) bool {
	enc := charmap.Windows1252.NewEncoder()
	for _, t := range texts {
		if _, err := enc.String(t); err != nil {
			return false
		}
	}
	return true
}
