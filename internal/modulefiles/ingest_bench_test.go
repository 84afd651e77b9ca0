package modulefiles_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/modulefiles"
)

const benchSize = 32 << 20

// benchFile is a 32 MiB upload: a PDF header, then random bytes.
func benchFile(b *testing.B) []byte {
	data := make([]byte, benchSize)
	rand.Read(data)
	copy(data, "%PDF-1.7\n")
	return data
}

// BenchmarkIngest is the completion of a 32 MiB upload on a directory bucket: read back,
// hashed, sniffed, written to its own key, checked for a ZIP.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	data := benchFile(b)
	bucket, err := fileblob.OpenBucket(b.TempDir(), &fileblob.Options{NoTempDir: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()
	s, err := modulefiles.New(bucket, modulefiles.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	u := course.FileUpload{FileID: "f", Name: "big.pdf", Type: "application/pdf", Size: benchSize, SHA256: hex.EncodeToString(sum[:])}
	if err := bucket.WriteAll(ctx, modulefiles.UploadKey("go", "f", benchSize), data, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		stored, err := s.Ingest(ctx, "go", u)
		if err != nil || stored.Key == "" {
			b.Fatalf("Ingest = %+v, %v", stored, err)
		}
	}
}

// BenchmarkCopyAndHash is the floor Ingest is compared with: the same bytes copied from one
// file to another and hashed, with nothing else.
func BenchmarkCopyAndHash(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, benchFile(b), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, "dst"))
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
			b.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
