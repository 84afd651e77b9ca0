package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/internal/tests3"
)

// run starts the HTTP server, the log's writer and syncer; each test stops what it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(tests3.Main(testpostgres.Main(m))) }

var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// syncBuffer is the server's log output, written by its goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is the whole program, `edutrack serve`, on a free port over a data dir.
type server struct {
	t      *testing.T
	base   string
	dir    string
	client *http.Client
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	stop   func()
	// early makes stop skip waiting for the projections to start.
	early bool
	// log follows the log's head through the answers, so each test can tell how many events a
	// request appended; it is shared by the servers a test runs one after the other on dir.
	log *logTracker
}

// logTracker is the position of the last event the test knows the log holds.
type logTracker struct {
	pos    uint64
	probes int // renames of user "probe" so far, so each one changes the name
}

// start runs the program on dir until the test ends or stop is called; stop checks that run
// returned nil and that nothing was logged as an error.
func start(t *testing.T, dir string, log *logTracker) *server {
	t.Helper()
	return launch(t, dir, log, nil, func(string) bool { return false })
}

// launch runs the program on dir with extra settings in the environment until the test ends or
// stop is called; stop checks that run returned nil and that no error was logged but those
// tolerated.
func launch(t *testing.T, dir string, log *logTracker, extra map[string]string, tolerated func(line string) bool) *server {
	t.Helper()
	env := testEnv(dir)
	maps.Copy(env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, dir: dir, logs: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), log: log}
	ready := make(chan string, 1)
	go func() {
		s.done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, s.logs,
			func(addr string) { ready <- addr })
	}()
	select {
	case addr := <-ready:
		s.base = "http://" + addr
	case err := <-s.done:
		cancel()
		t.Fatalf("run returned before serving: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server not ready after 30s\n%s", s.logs)
	}
	transport := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	s.client = &http.Client{Transport: callerTransport{transport}, Timeout: 30 * time.Second}
	s.stop = sync.OnceFunc(func() {
		if !s.early {
			s.settle(t)
		}
		cancel()
		var err error
		select {
		case err = <-s.done:
		case <-time.After(60 * time.Second):
			t.Errorf("run did not return within 60s of its context ending")
			return
		}
		transport.CloseIdleConnections()
		if err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
		for line := range strings.Lines(s.logs.String()) {
			if strings.Contains(line, "level=ERROR") && !tolerated(line) {
				t.Errorf("server logged an error: %s", line)
			}
		}
	})
	t.Cleanup(s.stop)
	return s
}

// testKey signs the tokens of the test servers (EDUTRACK_JWT_KEY).
const testKey = "a-key-for-tests-only-32-bytes-or-more"

// testAnchorKey anchors the event logs of the test servers (EDUTRACK_ANCHOR_KEY), so that every
// end-to-end test runs the anchored log, and checks it again at each restart.
const testAnchorKey = "an-anchor-key-for-tests-only-32-bytes-or-more"

// testAdmin is the admin who sends a test's requests unless it names another caller.
const testAdmin = "test-admin"

// testEnv is the environment of a test server on dir: its own port, tokens signed with
// testKey, its log anchored with testAnchorKey, and no rate limits or certificates, which tests
// of their own check.
func testEnv(dir string) map[string]string {
	return map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:0", "EDUTRACK_DATA_DIR": dir, "EDUTRACK_JWT_KEY": testKey,
		"EDUTRACK_ANCHOR_KEY": testAnchorKey, "EDUTRACK_RATE_LIMIT_IP": "off", "EDUTRACK_RATE_LIMIT_USER": "off",
		// A certificate appends to the log on its own time, which tests that follow the log's head
		// cannot foresee; the tests of certificates turn them on.
		"EDUTRACK_CERTIFICATES": "off"}
}

// bearer is the Authorization header of sub acting in role, signed with testKey.
func bearer(sub string, role domain.Role) string {
	token, err := auth.Mint([]byte(testKey), auth.Claims{Subject: sub, Role: role})
	if err != nil {
		panic(err) // only a test's own mistake: a bad subject or role
	}
	return "Bearer " + token
}

// learnerRecords matches the reads of a learner's own records.
var learnerRecords = regexp.MustCompile(`^/v1/learners/([^/]+)/`)

// callerTransport signs each request that carries no Authorization header of its own. A GET
// of a learner's records is sent by that learner, so that the read discloses nothing and
// appends nothing to the log; everything else by testAdmin.
type callerTransport struct{ base http.RoundTripper }

func (c callerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return c.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	if m := learnerRecords.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodGet {
		req.Header.Set("Authorization", bearer(m[1], domain.Learner))
	} else {
		req.Header.Set("Authorization", bearer(testAdmin, domain.Admin))
	}
	return c.base.RoundTrip(req)
}

// reply is one HTTP answer.
type reply struct {
	status      int
	contentType string
	body        []byte
	requestID   string // the answer's X-Request-Id
}

// send sends body (nil for none) with contentType (empty for no header) and headers given as
// name, value pairs.
func (s *server) send(method, path, contentType string, body []byte, headers ...string) reply {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: data, requestID: resp.Header.Get("X-Request-Id")}
}

// do sends v as JSON (a string is sent as it is; nil sends no body).
func (s *server) do(method, path string, v any, headers ...string) reply {
	s.t.Helper()
	switch v := v.(type) {
	case nil:
		return s.send(method, path, "", nil, headers...)
	case string:
		return s.send(method, path, "application/json", []byte(v), headers...)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			s.t.Fatalf("marshal %v: %v", v, err)
		}
		return s.send(method, path, "application/json", data, headers...)
	}
}

// result is a success body; decoding it strictly checks that it holds nothing else.
type result struct {
	ID              string `json:"id"`
	Version         uint64 `json:"version"`
	Position        uint64 `json:"position"`
	CourseCompleted *bool  `json:"courseCompleted,omitempty"`
}

// ok checks a success: its status, JSON body, and that it appended exactly events events (a
// no-op, events == 0, answers a position the log already had).
func (s *server) ok(r reply, status, events int) result {
	s.t.Helper()
	if r.status != status {
		s.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if mt, _, _ := mime.ParseMediaType(r.contentType); mt != "application/json" {
		s.t.Errorf("Content-Type %q, want application/json", r.contentType)
	}
	var res result
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		s.t.Fatalf("success body %s: %v", r.body, err)
	}
	if events > 0 {
		if want := s.log.pos + uint64(events); res.Position != want {
			s.t.Errorf("position %d, want %d: %d events after the last known position %d", res.Position, want, events, s.log.pos)
		}
		s.log.pos = res.Position
	} else if res.Position > s.log.pos {
		s.t.Errorf("a no-op answered position %d, past the log's last known position %d", res.Position, s.log.pos)
	}
	return res
}

// problemDetails checks an error answer: problem+json with its status, title and field.
func (s *server) problemDetails(r reply, status int, field string) problem.Details {
	s.t.Helper()
	if r.status != status {
		s.t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if mt, _, _ := mime.ParseMediaType(r.contentType); mt != problem.ContentType {
		s.t.Errorf("Content-Type %q, want %s", r.contentType, problem.ContentType)
	}
	var d problem.Details
	if err := json.Unmarshal(r.body, &d); err != nil {
		s.t.Fatalf("problem body %q: %v", r.body, err)
	}
	if d.Status != status || d.Title != http.StatusText(status) || d.Field != field || d.Type == "" {
		s.t.Errorf("problem %+v, want status %d, title %q, field %q and a type", d, status, http.StatusText(status), field)
	}
	return d
}

// probe appends exactly one event, renaming user "probe", and checks that it lands right after
// the last known position: nothing else was appended since.
func (s *server) probe() {
	s.t.Helper()
	s.log.probes++
	s.ok(s.do(http.MethodPatch, "/v1/users/probe", map[string]string{"name": fmt.Sprintf("Probe %d", s.log.probes)}), http.StatusOK, 1)
}

// settle waits until every projection has applied the log up to the last known position (after
// appending one event to an empty log), so that the server has finished starting. stop settles
// first, because a stop during start-up is a separate matter, tested on its own.
func (s *server) settle(t *testing.T) bool {
	t.Helper()
	if s.log.pos == 0 {
		resp, err := s.client.Post(s.base+"/v1/users", "application/json",
			strings.NewReader(`{"name":"Settler","email":"settler@example.com","role":"learner"}`))
		if err != nil {
			t.Errorf("settle: %v", err)
			return false
		}
		var res result
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || res.Position != 1 {
			t.Errorf("settle: registering a user on an empty log answered %d %+v (%v)", resp.StatusCode, res, err)
			return false
		}
		s.log.pos = res.Position
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ready struct {
			Projections map[string]struct {
				Position uint64 `json:"position"`
			} `json:"projections"`
		}
		resp, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
		}
		settled := err == nil && len(ready.Projections) > 0
		for _, p := range ready.Projections {
			settled = settled && p.Position >= s.log.pos
		}
		if settled {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("projections did not reach position %d within 30s: /readyz %+v (%v)", s.log.pos, ready, err)
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLog reopens the data dir, once the server is stopped, and returns the whole log.
func readLog(t *testing.T, dir string, streams ...string) (all []eventstore.RecordedEvent, byStream map[string][]eventstore.RecordedEvent) {
	t.Helper()
	store, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatalf("reopen the log: %v", err)
	}
	defer store.Close()
	ctx := context.Background()
	for after := uint64(0); ; {
		batch, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
		if len(batch) == 0 {
			break
		}
		all = append(all, batch...)
		after = batch[len(batch)-1].Position
	}
	byStream = make(map[string][]eventstore.RecordedEvent)
	for _, s := range streams {
		recs, err := store.ReadStream(ctx, s, 1, 0)
		if err != nil {
			t.Fatalf("read %s: %v", s, err)
		}
		byStream[s] = recs
	}
	return all, byStream
}
