//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testredis"
)

// The live-updates test runs the deployment of TestMultiProcessDeployment (one projector this
// time) with tokens instead of EDUTRACK_AUTH=disabled, so that a learner follows their own
// dashboard, which discloses nothing, and with Redis behind a proxy that can take it away.

// e2eLiveWait bounds each wait for streams to show what the reads show: room for -race on
// busy cores, not a latency claim.
const e2eLiveWait = 30 * time.Second

// liveClient is one user's live client: the streams it opened one after another, as a page that
// reconnects would, and every message they brought.
type liveClient struct {
	name, auth, topics string
	// follows are the kinds of documents the client's topics bring it (keys' prefixes).
	follows []string
	hc      *http.Client

	mu     sync.Mutex
	msgs   []liveMsg
	conns  int
	stream *sseClient
	ended  chan struct{} // closed when the current stream has ended
}

type liveMsg struct {
	sseEvent
	conn int // which of the client's streams brought it, from 1
}

func newLiveClient(t *testing.T, name string, auth string, topics string, follows ...string) *liveClient {
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return &liveClient{name: name, auth: auth, topics: topics, follows: follows, hc: hc}
}

// connect opens a stream of c's topics on p with query (from "&") and headers, and keeps what
// it brings.
func (c *liveClient) connect(t *testing.T, p *e2eProcess, query string, headers ...string) {
	t.Helper()
	s := openStreamAt(t, c.hc, p.base+"/v1/live?topics="+c.topics+query, append([]string{"Authorization", c.auth}, headers...)...).read()
	ended := make(chan struct{})
	c.mu.Lock()
	c.conns++
	conn := c.conns
	c.stream, c.ended = s, ended
	c.mu.Unlock()
	go func() {
		defer close(ended)
		for e := range s.events {
			c.mu.Lock()
			c.msgs = append(c.msgs, liveMsg{e, conn})
			c.mu.Unlock()
		}
	}()
}

// hangUp closes the current stream, as a page does before it opens another.
func (c *liveClient) hangUp() {
	c.mu.Lock()
	s := c.stream
	c.mu.Unlock()
	s.close()
}

func (c *liveClient) messages() []liveMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// lastID is the last id the client got among its first n messages, as EventSource keeps it.
func (c *liveClient) lastID(n int) string {
	msgs := c.messages()[:n]
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].HasID {
			return msgs[i].ID
		}
	}
	return ""
}

// liveKey names the document a message of event shows: its read model and its id.
func liveKey(event, data string) (string, error) {
	var d struct {
		ID        string `json:"id"`
		CourseID  string `json:"courseId"`
		LearnerID string `json:"learnerId"`
	}
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return "", fmt.Errorf("%s message %q: %w", event, data, err)
	}
	switch event {
	case "dashboards", "rosters":
		return event + "/" + d.LearnerID, nil
	case "course_details":
		return event + "/" + d.ID, nil
	case "course_stats":
		return event + "/" + d.CourseID, nil
	}
	return "", fmt.Errorf("a message of event %q, which the client does not follow: %s", event, data)
}

// state is the latest document of each key the client's messages brought.
func (c *liveClient) state(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range c.messages() {
		if m.Event == "" || m.Event == "resync" {
			continue
		}
		key, err := liveKey(m.Event, m.Data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out[key] = m.Data
	}
	return out
}

// mine is the part of docs that c's topics bring it.
func (c *liveClient) mine(docs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range docs {
		if slices.ContainsFunc(c.follows, func(p string) bool { return strings.HasPrefix(k, p+"/") }) {
			out[k] = v
		}
	}
	return out
}

// waitState waits until the latest document of each key the client got is the one want holds
// for it, and it got every document of want it follows.
func (c *liveClient) waitState(t *testing.T, want map[string]string, what string) {
	t.Helper()
	want = c.mine(want)
	for deadline := time.Now().Add(e2eLiveWait); ; time.Sleep(20 * time.Millisecond) {
		diff := cmp.Diff(want, c.state(t))
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: after %s its streams show other documents than the reads (-read +streamed):\n%s", c.name, what, e2eLiveWait, diff)
		}
	}
}

// waitStateThroughResyncs waits, as waitState does, until the client's streams show want; a
// resync among its messages after the first from makes it reopen on p with since the last id
// before the resync, as the README tells clients to. A change that never arrives, with no
// resync to say so, still fails the test.
func (c *liveClient) waitStateThroughResyncs(t *testing.T, want map[string]string, from int, p *e2eProcess, what string) {
	t.Helper()
	mine := c.mine(want)
	for deadline := time.Now().Add(e2eLiveWait); ; time.Sleep(20 * time.Millisecond) {
		diff := cmp.Diff(mine, c.state(t))
		if diff == "" {
			return
		}
		msgs := c.messages()
		for i := from; i < len(msgs); i++ {
			if msgs[i].Event == "resync" {
				since := c.lastID(i)
				c.hangUp()
				c.connect(t, p, "&since="+since)
				from = len(c.messages())
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: after %s its streams show other documents than the reads (-read +streamed):\n%s", c.name, what, e2eLiveWait, diff)
		}
	}
}

// waitFor waits until one of the client's messages after the first from satisfies ok, and
// returns its index.
func (c *liveClient) waitFor(t *testing.T, from int, what string, ok func(liveMsg) bool) int {
	t.Helper()
	for deadline := time.Now().Add(e2eLiveWait); ; time.Sleep(20 * time.Millisecond) {
		msgs := c.messages()
		for i := from; i < len(msgs); i++ {
			if ok(msgs[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %s; its messages since: %+v", c.name, what, e2eLiveWait, msgs[min(from, len(msgs)):])
		}
	}
}

// rank orders the states of one document as the load moves it: every command the load sends
// raises some count in each document it changes (modules completed, learners enrolled, the
// version in a name or a description), so a later state ranks higher.
func rank(event, data string) (float64, error) {
	var d struct {
		Name, Description   string
		Progress            float64
		Enrollments         []struct{ CompletedModules []string }
		Enrolled, Completed int
		EnrollmentCount     int
		CompletionCount     int
		ModuleCompletions   []struct{ Completions int }
	}
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return 0, err
	}
	switch event {
	case "dashboards":
		r := float64(renameOf(d.Name) + len(d.Enrollments))
		for _, e := range d.Enrollments {
			r += float64(len(e.CompletedModules))
		}
		return r, nil
	case "rosters":
		return float64(renameOf(d.Name)) + d.Progress, nil
	case "course_stats":
		r := d.Enrolled + d.Completed
		for _, m := range d.ModuleCompletions {
			r += m.Completions
		}
		return float64(r), nil
	default: // course_details
		return float64(d.EnrollmentCount + d.CompletionCount + renameOf(d.Description)), nil
	}
}

// checkOrder checks every message the client got: ids only grow on each stream, and never name a
// position past upTo, the latest acknowledged;
// each document's states come in the order the load made them, never older than one already
// shown; and, given seen (every state of each document the reads showed), each is one of them.
// It returns how many resyncs the client was told.
func (c *liveClient) checkOrder(t *testing.T, upTo uint64, seen map[string][]string) (resyncs int) {
	t.Helper()
	var lastID uint64
	conn := 0
	type shown struct {
		data string
		rank float64
	}
	last := map[string]shown{}
	for i, m := range c.messages() {
		if m.conn != conn {
			conn, lastID = m.conn, 0
		}
		if m.HasID {
			id, err := strconv.ParseUint(m.ID, 10, 64)
			switch {
			case err != nil:
				t.Errorf("%s: message %d has id %q", c.name, i, m.ID)
			case id < lastID:
				t.Errorf("%s: message %d (stream %d) has id %d, after %d", c.name, i, m.conn, id, lastID)
			case id > upTo:
				t.Errorf("%s: message %d has id %d, past the latest acknowledged position %d", c.name, i, id, upTo)
			}
			lastID = max(lastID, id)
		}
		switch m.Event {
		case "":
			continue
		case "resync":
			resyncs++
			continue
		}
		key, err := liveKey(m.Event, m.Data)
		if err != nil {
			t.Error(err)
			continue
		}
		r, err := rank(m.Event, m.Data)
		if err != nil {
			t.Errorf("%s: %s: %v", c.name, key, err)
			continue
		}
		if seen != nil && !slices.Contains(seen[key], m.Data) {
			t.Errorf("%s: message %d shows %s as no read at any position did: %s", c.name, i, key, m.Data)
		}
		if prev, ok := last[key]; ok && m.Data != prev.data && r <= prev.rank {
			t.Errorf("%s: message %d (stream %d) shows %s older than one it showed before:\nbefore %s\nthen   %s", c.name, i, m.conn, key, prev.data, m.Data)
		}
		last[key] = shown{m.Data, r}
	}
	return resyncs
}

// liveDocs reads, through both read processes at pos, every document the live clients follow:
// ada's dashboard, the course go's details and stats, and its roster rows, as their GET routes
// answer them (a roster row as the roster lists it).
func (d *e2eDeployment) liveDocs(t *testing.T, pos uint64) map[string]string {
	t.Helper()
	docs := map[string]string{
		"dashboards/ada":    string(d.readSame(t, "/v1/learners/ada/dashboard", pos)),
		"course_details/go": string(d.readSame(t, "/v1/courses/go", pos)),
		"course_stats/go":   string(d.readSame(t, "/v1/courses/go/stats", pos)),
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	body := d.readSame(t, "/v1/courses/go/roster?limit=100", pos)
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("roster %s: %v", body, err)
	}
	for _, it := range page.Items {
		var row struct {
			LearnerID string `json:"learnerId"`
		}
		var compact bytes.Buffer
		if err := json.Unmarshal(it, &row); err != nil || json.Compact(&compact, it) != nil {
			t.Fatalf("roster item %s: %v", it, err)
		}
		docs["rosters/"+row.LearnerID] = compact.String()
	}
	return docs
}

// liveLoad makes the commands of the live test: renames, new descriptions of the course,
// enrollments and completions, each raising a count in every document it changes (see rank).
type liveLoad struct {
	d        *e2eDeployment
	enrolled []string
	pool     []string // learners not enrolled yet
	done     map[string]int
	renames  map[string]int
	desc     int
	n        int
	last     atomic.Uint64 // the latest acknowledged position
}

func (l *liveLoad) command(t *testing.T, method, path string, body any) uint64 {
	t.Helper()
	pos := l.d.mustCommand(t, method, path, body)
	l.acked(pos)
	return pos
}

func (l *liveLoad) acked(pos uint64) {
	for {
		old := l.last.Load()
		if pos <= old || l.last.CompareAndSwap(old, pos) {
			return
		}
	}
}

// next is the load's next command.
func (l *liveLoad) next() (method, path string, body any) {
	l.n++
	switch l.n % 4 {
	case 1:
		l.desc++
		return http.MethodPatch, "/v1/courses/go", map[string]string{"description": fmt.Sprintf("About go v%d", l.desc)}
	case 2:
		if len(l.pool) > 0 {
			who := l.pool[0]
			l.pool = l.pool[1:]
			l.enrolled = append(l.enrolled, who)
			l.done[who] = 0
			return http.MethodPost, "/v1/courses/go/enrollments", map[string]string{"learnerId": who}
		}
	case 3:
		for i := range l.enrolled {
			who := l.enrolled[(l.n/4+i)%len(l.enrolled)]
			if l.done[who] < e2eLiveModules {
				l.done[who]++
				return http.MethodPost, fmt.Sprintf("/v1/learners/%s/courses/go/modules/m%d/complete", who, l.done[who]), nil
			}
		}
	}
	who := l.enrolled[(l.n/4)%len(l.enrolled)]
	l.renames[who]++
	return http.MethodPatch, "/v1/users/" + who, map[string]string{"name": e2eName(who, l.renames[who])}
}

const e2eLiveModules = 4

// setEnv sets name in every process's environment from now on.
func (d *e2eDeployment) setEnv(name, value string) {
	d.env = slices.DeleteFunc(d.env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	d.env = append(d.env, name+"="+value)
}

func (d *e2eDeployment) getEnv(name string) string {
	for _, kv := range d.env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestE2ELiveUpdatesAcrossProcesses follows one learner and one course through live streams on
// both read processes while commands go to the write process: every change reaches the clients
// of both; a client whose read process is killed comes back to the other and misses nothing;
// and through a Redis outage the streams stay open, and are told to resync when it returns.
// It is slow (about a minute under -race): it builds the binary and starts five processes.
func TestE2ELiveUpdatesAcrossProcesses(t *testing.T) {
	d := newE2EDeployment(t)
	redisURL := d.getEnv("EDUTRACK_REDIS_URL")
	proxy := testredis.NewProxy(t, strings.TrimSuffix(strings.TrimPrefix(redisURL, "redis://"), "/0"))
	d.setEnv("EDUTRACK_REDIS_URL", "redis://"+proxy.Addr()+"/0")
	d.setEnv("EDUTRACK_AUTH", "jwt")
	d.setEnv("EDUTRACK_JWT_KEY", testKey)
	d.client.Transport = callerTransport{base: d.client.Transport}
	d.writer = d.start(t, "write", d.envWith("write"))
	projector := d.start(t, "project", d.envWith("project"))
	projector.waitLog(t, "projector lease acquired", 30*time.Second)
	d.readers = []*e2eProcess{d.start(t, "read-1", d.envWith("read")), d.start(t, "read-2", d.envWith("read"))}

	load := &liveLoad{d: d, enrolled: []string{"ada", "bob"}, done: map[string]int{}, renames: map[string]int{}}
	load.command(t, http.MethodPost, "/v1/users", map[string]string{"id": "ins", "name": "Grace Hopper", "email": "grace@example.com", "role": "instructor"})
	for _, l := range []string{"ada", "bob", "l1", "l2", "l3", "l4", "l5", "l6"} {
		load.command(t, http.MethodPost, "/v1/users", map[string]string{"id": l, "name": e2eName(l, 0), "email": l + "@example.com", "role": "learner"})
		if l != "ada" && l != "bob" {
			load.pool = append(load.pool, l)
		}
	}
	load.command(t, http.MethodPost, "/v1/courses", map[string]string{"id": "go", "title": "Course go", "description": "About go v0",
		"category": "programming", "level": "beginner", "instructorId": "ins"})
	for i := range e2eLiveModules {
		load.command(t, http.MethodPost, "/v1/courses/go/modules", map[string]string{"id": fmt.Sprintf("m%d", i+1), "title": "Module"})
	}
	load.command(t, http.MethodPost, "/v1/courses/go/publish", nil)

	// ada follows her dashboard and the course; its instructor follows the course, whose stats
	// and roster rows only teachers get.
	newClients := func(t *testing.T, suffix string) (ada, ins *liveClient) {
		return newLiveClient(t, "ada"+suffix, bearer("ada", domain.Learner), "learner:ada,course:go", "dashboards", "course_details"),
			newLiveClient(t, "ins"+suffix, bearer("ins", domain.Instructor), "course:go", "course_details", "course_stats", "rosters")
	}

	t.Run("a_change_made_through_the_write_process_reaches_the_clients_of_both_read_processes", func(t *testing.T) {
		seen := map[string][]string{}
		note := func(docs map[string]string) map[string]string {
			for k, v := range docs {
				if !slices.Contains(seen[k], v) {
					seen[k] = append(seen[k], v)
				}
			}
			return docs
		}
		want := note(d.liveDocs(t, load.last.Load()))
		var clients []*liveClient
		for i := range 2 {
			ada, ins := newClients(t, fmt.Sprintf("@read-%d", i+1))
			for _, c := range []*liveClient{ada, ins} {
				// since=0: the catch-up sends every document the client follows, as it is now.
				c.connect(t, d.reader(i), "&since=0")
				c.waitState(t, want, "the catch-up from since=0")
				clients = append(clients, c)
			}
		}
		// One command at a time, each read at its position through both read processes before
		// the next, so every state of every document is one the clients must show.
		steps := []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, "/v1/courses/go/enrollments", map[string]string{"learnerId": "ada"}},
			{http.MethodPost, "/v1/learners/ada/courses/go/modules/m1/complete", nil},
			{http.MethodPost, "/v1/courses/go/enrollments", map[string]string{"learnerId": "bob"}},
			{http.MethodPatch, "/v1/users/ada", map[string]string{"name": e2eName("ada", 1)}},
			{http.MethodPost, "/v1/learners/bob/courses/go/modules/m1/complete", nil},
			{http.MethodPatch, "/v1/courses/go", map[string]string{"description": "About go v1"}},
			{http.MethodPost, "/v1/learners/ada/courses/go/modules/m2/complete", nil},
			{http.MethodPost, "/v1/learners/ada/courses/go/modules/m3/complete", nil},
			// The last module: the course counts ada as having completed it.
			{http.MethodPost, "/v1/learners/ada/courses/go/modules/m4/complete", nil},
			{http.MethodPatch, "/v1/users/bob", map[string]string{"name": e2eName("bob", 1)}},
		}
		for _, s := range steps {
			pos := load.command(t, s.method, s.path, s.body)
			next := note(d.liveDocs(t, pos))
			if cmp.Equal(want, next) {
				t.Fatalf("%s %s changed none of the documents the clients follow", s.method, s.path)
			}
			want = next
			for _, c := range clients {
				c.waitState(t, want, fmt.Sprintf("after %s %s (position %d)", s.method, s.path, pos))
			}
		}
		load.renames["ada"], load.renames["bob"], load.done["ada"], load.done["bob"], load.desc = 1, 1, 4, 1, 1
		for _, c := range clients {
			if n := c.checkOrder(t, load.last.Load(), seen); n > 0 {
				t.Errorf("%s was told to resync %d times; nothing was lost", c.name, n)
			}
		}
	})

	t.Run("a_client_that_comes_back_to_the_other_read_process_after_kill_-9_of_its_own_misses_nothing", func(t *testing.T) {
		ada, ins := newClients(t, "")
		clients := []*liveClient{ada, ins}
		from := load.last.Load()
		for _, c := range clients {
			c.connect(t, d.reader(0), "&since=0")
			c.waitState(t, d.liveDocs(t, from), "the catch-up from since=0")
		}
		// The load: one command after another to the write process until stopped.
		stop, stopped := make(chan struct{}), make(chan struct{})
		var sent atomic.Int64
		go func() {
			defer close(stopped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				method, path, body := load.next()
				pos, err := d.command(t.Context(), method, path, body)
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				load.acked(pos)
				sent.Add(1)
				time.Sleep(30 * time.Millisecond)
			}
		}()
		halt := sync.OnceFunc(func() { close(stop); <-stopped })
		defer halt()
		waitSent := func(n int64) {
			t.Helper()
			for deadline := time.Now().Add(e2eLiveWait); sent.Load() < n; time.Sleep(10 * time.Millisecond) {
				if t.Failed() || time.Now().After(deadline) {
					t.Fatalf("the load has sent %d commands, want %d", sent.Load(), n)
				}
			}
		}
		for _, c := range clients {
			c.waitFor(t, 0, "live message", func(m liveMsg) bool {
				id, _ := strconv.ParseUint(m.ID, 10, 64)
				return m.Event != "" && m.HasID && id > from
			})
		}
		d.reader(0).kill()
		lastIDs, shown := map[*liveClient]string{}, map[*liveClient]map[string]string{}
		for _, c := range clients {
			select {
			case <-c.ended:
			case <-time.After(e2eLiveWait):
				t.Fatalf("%s: its stream goes on after kill -9 of its read process", c.name)
			}
			lastIDs[c], shown[c] = c.lastID(len(c.messages())), c.state(t)
			if lastIDs[c] == "" {
				t.Fatalf("%s got no id before its read process died", c.name)
			}
		}
		// Commands go on while the clients are away; then they stop, so that what the clients
		// hold after coming back can only be what the catch-up sent.
		waitSent(sent.Load() + 8)
		halt()
		upTo := load.last.Load()
		t.Logf("%s killed; the clients, gone at ids %s and %s, come back to %s at the latest acknowledged position %d",
			d.reader(0).name, lastIDs[ada], lastIDs[ins], d.reader(1).name, upTo)
		ada.connect(t, d.reader(1), "", "Last-Event-ID", lastIDs[ada])
		ins.connect(t, d.reader(1), "&since="+lastIDs[ins])
		restarted := d.start(t, "read-1-restarted", d.envWith("read"))
		d.mu.Lock()
		d.readers[0] = restarted
		d.mu.Unlock()
		want := d.liveDocs(t, upTo)
		for _, c := range clients {
			if cmp.Equal(c.mine(want), shown[c]) {
				t.Fatalf("%s: nothing it follows changed while it was away; the test shows nothing", c.name)
			}
			c.waitState(t, want, fmt.Sprintf("back from id %s on %s, at the latest acknowledged position %d", lastIDs[c], d.reader(1).name, upTo))
		}
		// And the stream it came back to goes on.
		method, path, body := load.next()
		pos := load.command(t, method, path, body)
		want = d.liveDocs(t, pos)
		for _, c := range clients {
			c.waitState(t, want, fmt.Sprintf("after %s %s (position %d)", method, path, pos))
			// The stream it came back to starts where the one that died stopped.
			back, _ := strconv.ParseUint(lastIDs[c], 10, 64)
			for _, m := range c.messages() {
				if id, err := strconv.ParseUint(m.ID, 10, 64); m.conn == 2 && m.HasID && (err != nil || id < back) {
					t.Errorf("%s came back from id %d, and the stream it came back to sent id %q", c.name, back, m.ID)
				}
			}
			if n := c.checkOrder(t, load.last.Load(), nil); n > 0 {
				t.Errorf("%s was told to resync %d times; nothing was lost", c.name, n)
			}
		}
	})

	t.Run("through_a_Redis_outage_streams_stay_open_and_are_told_to_resync_when_it_returns", func(t *testing.T) {
		var clients []*liveClient
		want := d.liveDocs(t, load.last.Load())
		for i := range 2 {
			ada, ins := newClients(t, fmt.Sprintf("@read-%d", i+1))
			for _, c := range []*liveClient{ada, ins} {
				c.connect(t, d.reader(i), "&since=0")
				c.waitState(t, want, "the catch-up from since=0")
				clients = append(clients, c)
			}
		}
		marks := map[*liveClient]int{}
		for _, c := range clients {
			marks[c] = len(c.messages())
		}
		proxy.Hang()
		// Redis is gone: the read processes still answer reads, at the positions of commands
		// sent meanwhile, and the streams stay open.
		for range 4 {
			method, path, body := load.next()
			want = d.liveDocs(t, load.command(t, method, path, body))
		}
		for _, c := range clients {
			select {
			case <-c.ended:
				t.Fatalf("%s: its stream ended while Redis was away", c.name)
			default:
			}
		}
		proxy.Restore()
		for _, c := range clients {
			i := c.waitFor(t, marks[c], "resync once Redis is back", func(m liveMsg) bool { return m.Event == "resync" })
			if m := c.messages()[i]; m.Data != `{"reason":"feed"}` || m.HasID {
				t.Errorf("%s: %+v, want a resync for reason feed, with no id", c.name, m)
			}
			// As the README says: reopen with since the last id before the resync.
			since := c.lastID(i)
			c.hangUp()
			c.connect(t, d.reader(slices.Index(clients, c)/2), "&since="+since)
			c.waitState(t, want, "after the resync, back from id "+since)
		}
		// And the feed carries changes again.
		for _, c := range clients {
			marks[c] = len(c.messages())
		}
		method, path, body := load.next()
		pos := load.command(t, method, path, body)
		want = d.liveDocs(t, pos)
		for _, c := range clients {
			// The first publish after the outage may tell the streams to resync once more (the
			// projector cannot know that they already have), in place of the change: the client
			// then reopens, as the README says, and must end with the change all the same.
			c.waitStateThroughResyncs(t, want, marks[c], d.reader(slices.Index(clients, c)/2),
				fmt.Sprintf("after %s %s (position %d)", method, path, pos))
			t.Logf("%s was told to resync %d times", c.name, c.checkOrder(t, load.last.Load(), nil))
		}
	})

	for _, p := range d.all() {
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", p.name, p.logs)
		}
	}
}
