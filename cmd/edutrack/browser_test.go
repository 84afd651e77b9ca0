package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/edutrack/edutrack/domain"
)

// chromium returns the browser the page runs in: EDUTRACK_CHROMIUM, else Debian's chromium on
// PATH. Without it the test fails, saying how to get it: `make test` installs it (.ci/deps).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDUTRACK_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is needed to run examples/live in a browser: run the suite with `make test` (which installs Debian's chromium through .ci/deps), or set EDUTRACK_CHROMIUM")
	}
	return p
}

// examplePage serves examples/live.
var examplePage = http.FileServer(http.Dir(filepath.Join("..", "..", "examples", "live")))

// pageServer serves examples/live and passes /v1 on to EduTrack, so that the page calls the API
// on its own origin, as it would behind one reverse proxy. It can stand for an outage of the
// streams: cut ends those open and answers 503 to new ones until restore.
type pageServer struct {
	*httptest.Server
	proxy *httputil.ReverseProxy

	mu      sync.Mutex
	down    bool
	streams map[*http.Request]context.CancelFunc
}

func newPageServer(t *testing.T, api string) *pageServer {
	t.Helper()
	target, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	p := &pageServer{streams: map[*http.Request]context.CancelFunc{}}
	// A text/event-stream answer is flushed as it comes; the proxy's errors are those of the
	// streams the test cuts.
	p.proxy = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: transport,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	mux := http.NewServeMux()
	mux.Handle("/", examplePage)
	mux.HandleFunc("/v1/", p.api)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		p.Close()
		transport.CloseIdleConnections()
	})
	return p
}

func (p *pageServer) api(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/live" {
		p.proxy.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		http.Error(w, "streams are down", http.StatusServiceUnavailable)
		return
	}
	p.streams[r] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.streams, r)
		p.mu.Unlock()
	}()
	p.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (p *pageServer) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, cancel := range p.streams {
		cancel()
	}
}

func (p *pageServer) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// browser is a tab of headless Chromium, and the exceptions its pages threw.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	thrown []string
}

// newBrowser starts Chromium with a profile, home and caches in a temp dir, so that it writes
// nothing elsewhere; the test's end stops it.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // headless, no /dev/shm, ...
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox will not start
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache")),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
	})
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.mu.Lock()
			b.thrown = append(b.thrown, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, text))
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) navigate(u string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(u)); err != nil {
		b.t.Fatalf("open %s: %v", u, err)
	}
}

// text is the text of the page's element with data-testid id ("" if there is none).
func (b *browser) text(id string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('[data-testid=%q]')?.textContent ?? ""`, id)))
	if err != nil {
		b.t.Fatalf("read %s: %v", id, err)
	}
	return s
}

// waitFor waits until the element with data-testid id reads want, and fails after 20 s,
// showing what the page logged.
func (b *browser) waitFor(id, want string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := b.text(id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			b.mu.Lock()
			thrown := strings.Join(b.thrown, "\n")
			b.mu.Unlock()
			b.t.Fatalf("after 20s the page shows %s %q, want %q\npage log:\n%s\nexceptions:\n%s", id, got, want, b.text("log"), thrown)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// enrollAda registers learner ada and enrolls her in course go, of four modules, and returns
// a command that completes one of them as ada, and ada's token.
func enrollAda(s *server) (complete func(module string) result, token string) {
	s.t.Helper()
	s.ok(s.do(http.MethodPost, "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses", newCourse("go")), created, 1)
	for i := range 4 {
		s.ok(s.do(http.MethodPost, "/v1/courses/go/modules", module(fmt.Sprintf("m%d", i+1), "Module")), created, 1)
	}
	s.ok(s.do(http.MethodPost, "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do(http.MethodPost, "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	ada := bearer("ada", domain.Learner)
	complete = func(module string) result {
		s.t.Helper()
		return s.ok(s.do(http.MethodPost, completePath("ada", "go", module), nil, "Authorization", ada), ok, 1)
	}
	// The page reads the dashboard as of the enrollment: its reads, unlike the test's, do not
	// wait for the projections.
	s.settle(s.t)
	return complete, strings.TrimPrefix(ada, "Bearer ")
}

// TestBrowserFollowsProgress opens examples/live in headless Chromium, as a learner, and checks
// that the page shows what commands do to her progress as they happen, across an outage of
// its stream too.
func TestBrowserFollowsProgress(t *testing.T) {
	t.Parallel()
	s := launch(t, t.TempDir(), &logTracker{}, nil, func(string) bool { return false })
	complete, token := enrollAda(s)
	pages := newPageServer(t, s.base)
	b := newBrowser(t)
	b.navigate(pages.URL + "/#learner=ada&token=" + url.QueryEscape(token))
	b.waitFor("state", "open")
	b.waitFor("progress-go", "0 of 4 modules (0%)")

	res := complete("m1")
	b.waitFor("progress-go", "1 of 4 modules (25%)")
	b.waitFor("last-event-id", strconv.FormatUint(res.Position, 10))

	// While its stream is down the page keeps trying with new tickets; what changed meanwhile
	// comes first once one opens, then the live messages.
	pages.cut()
	b.waitFor("state", "reconnecting")
	complete("m2")
	pages.restore()
	b.waitFor("state", "open")
	b.waitFor("progress-go", "2 of 4 modules (50%)")
	res = complete("m3")
	b.waitFor("progress-go", "3 of 4 modules (75%)")
	b.waitFor("last-event-id", strconv.FormatUint(res.Position, 10))

	// The last module completes the course as well: two events, one dashboard.
	s.ok(s.do(http.MethodPost, completePath("ada", "go", "m4"), nil, "Authorization", "Bearer "+token), ok, 2)
	b.waitFor("progress-go", "4 of 4 modules (100%)")
	b.waitFor("status-go", " (completed)")
}

// TestBrowserFollowsProgressFromAnotherOrigin opens examples/live as the README says to: from
// an origin of its own, listed in EDUTRACK_CORS_ORIGINS, with api= naming EduTrack's.
func TestBrowserFollowsProgressFromAnotherOrigin(t *testing.T) {
	t.Parallel()
	pages := httptest.NewServer(examplePage)
	t.Cleanup(pages.Close)
	s := launch(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_CORS_ORIGINS": pages.URL}, func(string) bool { return false })
	complete, token := enrollAda(s)
	b := newBrowser(t)
	b.navigate(pages.URL + "/#api=" + url.QueryEscape(s.base) + "&learner=ada&token=" + url.QueryEscape(token))
	b.waitFor("state", "open")
	b.waitFor("progress-go", "0 of 4 modules (0%)")
	res := complete("m1")
	b.waitFor("progress-go", "1 of 4 modules (25%)")
	b.waitFor("last-event-id", strconv.FormatUint(res.Position, 10))
}
