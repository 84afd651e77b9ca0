package imagefile_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gen2brain/webp"

	"github.com/edutrack/edutrack/internal/imagefile"
	"github.com/edutrack/edutrack/internal/imagefile/imagefiletest"
)

// BenchmarkVariants makes the six variants of one 12-megapixel photo (4000×3000, EXIF
// orientation 6), with EduTrack's pipeline and, in the same run, with libvips's vipsthumbnail
// (one run per output, as it makes one output per run; it decodes each time, shrinking on load).
// Set EDUTRACK_VIPSTHUMBNAIL to its path to compare; it is not needed otherwise.
func BenchmarkVariants(b *testing.B) {
	photo := imagefiletest.Photo(4000, 3000)
	b.Run("edutrack", func(b *testing.B) {
		webpEngine := "wasm"
		if webp.Dynamic() == nil {
			webpEngine = "libwebp"
		}
		b.Logf("WebP encoder: %s", webpEngine)
		b.SetBytes(int64(len(photo)))
		cpu := cpuTime()
		for b.Loop() {
			if _, _, err := imagefile.Variants(photo, maxPixels); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		// CPU time as well as the rate: the machine is shared, and a rate counts the waits.
		b.ReportMetric(float64((cpuTime()-cpu).Milliseconds())/float64(b.N), "cpu-ms/image")
	})
	vips := os.Getenv("EDUTRACK_VIPSTHUMBNAIL")
	if vips == "" {
		return
	}
	dir := b.TempDir()
	in := filepath.Join(dir, "photo.jpg")
	if err := os.WriteFile(in, photo, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Run("vipsthumbnail", func(b *testing.B) {
		b.SetBytes(int64(len(photo)))
		var cpu time.Duration
		for b.Loop() {
			for _, w := range imagefile.Widths {
				for _, out := range []string{"webp[Q=75,strip]", "jpg[Q=82,strip]"} {
					cmd := exec.Command(vips, in, "--size", fmt.Sprintf("%dx>", w), "-o", filepath.Join(dir, fmt.Sprintf("v%d.%s", w, out)))
					if o, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%v: %s", err, o)
					}
					cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/image")
	})
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPeakMemoryPerImage bounds and reports the heap the variants of one 12-megapixel photo
// take: what each image in flight costs, which the number of image workers multiplies. It
// counts every allocation, with no collection during the run, so it is an upper bound of the
// peak.
func TestPeakMemoryPerImage(t *testing.T) {
	photo := imagefiletest.Photo(4000, 3000)
	imagefile.Variants(photo, maxPixels) // start the WebP runtime, which is shared and kept
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	old := debugGC(-1) // no collection during the run: the peak is what it allocates, not what survives
	if _, _, err := imagefile.Variants(photo, maxPixels); err != nil {
		t.Fatal(err)
	}
	debugGC(old)
	close(stop)
	wg.Wait()
	t.Logf("12 MP JPEG (%d KiB): at most %d MiB of heap allocated by one image in flight", len(photo)>>10, (peak-base)>>20)
	// The decoded photo alone is 18 MiB; a kernel filter over it took 300 MiB.
	if peak-base > 160<<20 {
		t.Errorf("one image took %d MiB; want at most 160 (cmd/edutrack's imageWorkers counts on it)", (peak-base)>>20)
	}
}
