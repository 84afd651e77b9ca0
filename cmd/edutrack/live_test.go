package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
)

// sseEvent is one message of a live stream, parsed as EventSource parses it.
type sseEvent struct {
	ID, Event, Data, Retry string
	HasID                  bool
}

// sseClient is an open live stream and the messages read from it. Nothing is read from the
// connection before read is called, so a stream can stand for a client that stopped reading.
type sseClient struct {
	t       *testing.T
	resp    *http.Response
	events  chan sseEvent
	started bool
	done    chan struct{}
	quit    chan struct{}
	cancel  context.CancelFunc
}

// rawClient sends requests as they are: no Authorization header is added.
var rawClient = &http.Client{Transport: &http.Transport{}}

// openStream opens GET path on s with headers (name, value pairs) through hc, and fails unless
// a stream opens.
func openStream(t *testing.T, s *server, hc *http.Client, path string, headers ...string) *sseClient {
	t.Helper()
	return openStreamAt(t, hc, s.base+path, headers...)
}

// openStreamAt is openStream on any server: a process of its own, say.
func openStreamAt(t *testing.T, hc *http.Client, url string, headers ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s %s, want a stream", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 1024), done: make(chan struct{}), quit: make(chan struct{}), cancel: cancel}
	t.Cleanup(c.close)
	return c
}

// read starts reading the stream; it returns c.
func (c *sseClient) read() *sseClient {
	c.started = true
	go func() {
		defer close(c.done)
		defer close(c.events)
		r := bufio.NewReader(c.resp.Body)
		var e sseEvent
		fields := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				if fields > 0 {
					select {
					case c.events <- e:
					case <-c.quit:
						return
					}
				}
				e, fields = sseEvent{}, 0
				continue
			}
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "": // a comment
				continue
			case "id":
				e.ID, e.HasID = value, true
			case "event":
				e.Event = value
			case "data":
				e.Data = value
			case "retry":
				e.Retry = value
			}
			fields++
		}
	}()
	return c
}

func (c *sseClient) close() {
	select {
	case <-c.quit:
		return
	default:
	}
	close(c.quit)
	c.cancel()
	c.resp.Body.Close()
	if c.started {
		<-c.done
	}
}

// next returns the next message, or fails after 20 s.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	select {
	case e, ok := <-c.events:
		if !ok {
			c.t.Fatal("the stream ended")
		}
		return e
	case <-time.After(20 * time.Second):
		c.t.Fatal("no message within 20s")
	}
	return sseEvent{}
}

// getAs answers a GET of path by sub acting in role, with no other header.
func getAs(t *testing.T, s *server, sub string, role domain.Role, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
	req.Header.Set("Authorization", bearer(sub, role))
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestLiveUpdates runs the whole program and follows a learner through live streams.
func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	s := launch(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_LIVE_BUFFER": "4"}, func(string) bool { return false })
	defer rawClient.CloseIdleConnections()
	s.ok(s.do(http.MethodPost, "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses", newCourse("go")), created, 1)
	for i := range 6 {
		s.ok(s.do(http.MethodPost, "/v1/courses/go/modules", module(fmt.Sprintf("m%d", i+1), "Module")), created, 1)
	}
	s.ok(s.do(http.MethodPost, "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses", map[string]string{"id": "draft", "title": "Draft", "category": "programming", "level": "beginner", "instructorId": "ins"}), created, 1)
	for _, id := range []string{"ada", "bob", "lee"} {
		s.ok(s.do(http.MethodPost, "/v1/users", user(id, "Learner "+id, "learner")), created, 1)
	}
	s.ok(s.do(http.MethodPost, "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	adaAuth := bearer("ada", domain.Learner)
	// The document as the GET answers it once the read models have reached pos.
	current := func(path string, pos uint64) string {
		t.Helper()
		status, b := getAs(t, s, "ada", domain.Learner, path+"?minPosition="+strconv.FormatUint(pos, 10))
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, b)
		}
		return string(b)
	}

	var lastID string
	t.Run("a_command_moves_progress_and_the_stream_shows_the_new_dashboard", func(t *testing.T) {
		s.t = t
		// As a page does: it shows the dashboard as of its own last write, then follows it from
		// the position the dashboard's ETag names, so that nothing older follows.
		req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/learners/ada/dashboard?minPosition="+strconv.FormatUint(s.log.pos, 10), nil)
		req.Header.Set("Authorization", adaAuth)
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		shown := strings.TrimSuffix(strings.Trim(resp.Header.Get("ETag"), `"`), "-gzip") // the document's position
		c := openStream(t, s, rawClient, "/v1/live?topics=learner:ada&since="+shown, "Authorization", adaAuth).read()
		res := s.ok(s.do(http.MethodPost, completePath("ada", "go", "m1"), nil), ok, 1)
		e := c.next()
		want := sseEvent{ID: strconv.FormatUint(res.Position, 10), HasID: true, Event: "dashboards", Data: current("/v1/learners/ada/dashboard", res.Position)}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("the stream's message (-want +got):\n%s", diff)
		}
		var d dashboardView
		json.Unmarshal([]byte(e.Data), &d)
		if len(d.Enrollments) != 1 || d.Enrollments[0].Progress != 1.0/6 {
			t.Errorf("the dashboard shows %+v, want progress 1/6", d.Enrollments)
		}
		lastID = e.ID
	})

	t.Run("a_client_that_comes_back_gets_exactly_what_changed_meanwhile", func(t *testing.T) {
		s.t = t
		// While it is away ada completes two modules (two states of her dashboard) and bob
		// enrolls (the course's details change); the catalog changes too, but it does not
		// follow the catalog.
		s.ok(s.do(http.MethodPost, completePath("ada", "go", "m2"), nil), ok, 1)
		s.ok(s.do(http.MethodPost, completePath("ada", "go", "m3"), nil), ok, 1)
		res := s.ok(s.do(http.MethodPost, "/v1/courses/go/enrollments", enrollment("bob")), created, 1)
		c := openStream(t, s, rawClient, "/v1/live?topics=learner:ada,course:go&minPosition="+strconv.FormatUint(res.Position, 10),
			"Authorization", adaAuth, "Last-Event-ID", lastID).read()
		got := map[string]string{}
		for range 2 {
			e := c.next()
			if e.HasID {
				t.Errorf("a catch-up message carries id %s", e.ID)
			}
			got[e.Event] = e.Data
		}
		want := map[string]string{"dashboards": current("/v1/learners/ada/dashboard", res.Position),
			"course_details": current("/v1/courses/go", res.Position)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the catch-up (-want +got):\n%s", diff)
		}
		e := c.next()
		if at, err := strconv.ParseUint(e.ID, 10, 64); !e.HasID || e.Event != "" || err != nil || at > res.Position {
			t.Errorf("after the catch-up: %+v, want an id of no more than %d and no event", e, res.Position)
		}
		next := s.ok(s.do(http.MethodPost, completePath("ada", "go", "m4"), nil), ok, 1)
		if e := c.next(); e.Event != "dashboards" || e.Data != current("/v1/learners/ada/dashboard", next.Position) {
			t.Errorf("then %+v, want the next dashboard", e)
		}
	})

	t.Run("a_hidden_topic_answers_404_before_the_stream_opens", func(t *testing.T) {
		s.t = t
		for _, topic := range []string{"learner:bob", "course:draft", "course:nope"} {
			r := s.send(http.MethodGet, "/v1/live?topics="+topic, "", nil, "Authorization", adaAuth)
			s.problemDetails(r, http.StatusNotFound, "")
		}
		r := s.send(http.MethodGet, "/v1/live?topics=learner:ada", "", nil, "Authorization", bearer("ins", domain.Instructor))
		s.problemDetails(r, http.StatusForbidden, "")
	})

	t.Run("a_ticket_opens_one_stream", func(t *testing.T) {
		s.t = t
		r := s.send(http.MethodPost, "/v1/live/tickets", "", nil, "Authorization", adaAuth)
		var tk struct {
			Ticket    string    `json:"ticket"`
			ExpiresAt time.Time `json:"expiresAt"`
		}
		if err := json.Unmarshal(r.body, &tk); err != nil || r.status != http.StatusOK || tk.Ticket == "" {
			t.Fatalf("POST /v1/live/tickets: %d %s", r.status, r.body)
		}
		c := openStream(t, s, rawClient, "/v1/live?topics=learner:ada&ticket="+tk.Ticket).read()
		res := s.ok(s.do(http.MethodPost, completePath("ada", "go", "m5"), nil), ok, 1)
		if e := c.next(); e.ID != strconv.FormatUint(res.Position, 10) {
			t.Errorf("the stream the ticket opened got %+v, want the dashboard at %d", e, res.Position)
		}
		resp, err := rawClient.Get(s.base + "/v1/live?topics=learner:ada&ticket=" + tk.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the ticket again: %d, want 401", resp.StatusCode)
		}
		if strings.Contains(s.logs.String(), tk.Ticket) {
			t.Error("the log shows the ticket")
		}
	})

	t.Run("a_token_in_the_query_string_is_refused", func(t *testing.T) {
		s.t = t
		token := strings.TrimPrefix(adaAuth, "Bearer ")
		resp, err := rawClient.Get(s.base + "/v1/live?topics=learner:ada&access_token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"field":"access_token"`) {
			t.Errorf("%d %s, want 400 naming access_token", resp.StatusCode, b)
		}
		if strings.Contains(s.logs.String(), token) {
			t.Error("the log shows the token")
		}
	})

	t.Run("a_slow_client_gets_a_resync_without_slowing_another", func(t *testing.T) {
		s.t = t
		slowHTTP := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Control: smallReceiveBuffer}).DialContext}}
		defer slowHTTP.CloseIdleConnections()
		slow := openStream(t, s, slowHTTP, "/v1/live?topics=course:go", "Authorization", bearer("lee", domain.Learner))
		fast := openStream(t, s, rawClient, "/v1/live?topics=course:go", "Authorization", adaAuth).read()
		// Course details of 10,000 characters, changed until the server has dropped messages
		// for the client that reads nothing (its socket's buffers take a megabyte or two first).
		var last result
		for i := 0; ; i++ {
			last = s.ok(s.do(http.MethodPatch, "/v1/courses/go", map[string]string{"description": strings.Repeat(strconv.Itoa(i%10), 10_000)}), ok, 1)
			if i%20 == 19 && metricValue(t, s, "edutrack_live_dropped_total") > 0 {
				break
			}
			if i == 2000 {
				t.Fatal("2000 changes and the server dropped nothing for the client that reads nothing")
			}
		}
		// The client that reads got every change up to the last, and no resync.
		want := current("/v1/courses/go", last.Position)
		for {
			e := fast.next()
			if e.Event == "resync" {
				t.Fatal("the client that reads was told to resync")
			}
			if e.Data == want {
				break
			}
		}
		// The slow client reads at last: what its buffers held, then one resync, then the rest.
		slow.read()
		resyncs := 0
		for resyncs == 0 {
			if e := slow.next(); e.Event == "resync" {
				resyncs++
				if e.Data != `{"reason":"behind"}` || e.HasID {
					t.Errorf("resync %+v, want reason behind and no id", e)
				}
			}
		}
		next := s.ok(s.do(http.MethodPatch, "/v1/courses/go", map[string]string{"description": "Short again."}), ok, 1)
		if e := slow.next(); e.Event != "course_details" || e.Data != current("/v1/courses/go", next.Position) {
			t.Errorf("after its resync the slow client got %+v, want the next change", e)
		}
	})

	t.Run("a_stop_tells_open_streams_to_come_back_and_does_not_wait_for_them", func(t *testing.T) {
		s.t = t
		c := openStream(t, s, rawClient, "/v1/live?topics=learner:ada", "Authorization", adaAuth).read()
		// stop fails the test if run returns an error: a shutdown that waited out its timeout
		// on the open stream would return one.
		s.stop()
		e := c.next()
		if ms, err := strconv.Atoi(e.Retry); err != nil || ms <= 0 {
			t.Errorf("got %+v, want retry:", e)
		}
		if _, open := <-c.events; open {
			t.Error("the stream went on after retry:")
		}
	})
}

// smallReceiveBuffer gives a client's socket a small receive buffer, so that a client that
// reads nothing holds up the server's writes sooner.
func smallReceiveBuffer(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	return err
}

// metricValue is the sum of the series of name on s's /metrics.
func metricValue(t *testing.T, s *server, name string) float64 {
	t.Helper()
	resp, err := rawClient.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f, _ := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' '):]), 64)
			sum += f
		}
	}
	return sum
}
