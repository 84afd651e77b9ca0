package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/projections/documents"
)

func TestReadEvents(t *testing.T) {
	long := strings.Repeat("x", 2000) // past the reader's buffer: skipped in pieces
	text := ": keep-alive\n\n" +
		"id: 7\nevent: dashboards\ndata: {\"a\":\"" + long + "\"}\n\n" +
		"id: 9\r\nevent: dashboards\r\ndata: {}\r\n\r\n" +
		"event: resync\ndata: {\"reason\":\"behind\"}\n\n" +
		"retry: 2000\n\n" +
		"id: 12\ndata: " + long + "\ndata: more\n\n" +
		"id: 13\nevent: dashboards\ndata: {}\n" // cut off before its blank line: not a message
	var got []sseEvent
	if err := readEvents(strings.NewReader(text), func(e sseEvent) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	want := []sseEvent{{event: "dashboards", id: 7, hasID: true}, {event: "dashboards", id: 9, hasID: true},
		{event: "resync"}, {id: 12, hasID: true}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestMatchDeliveries(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Learner 0 has two streams, learner 1 one, learner 2 none, learner 3 one.
	arrivals := [][][]arrival{
		{
			{{id: 10, at: ms(105)}, {id: 20, at: ms(230)}, {id: 40, at: ms(400)}},
			{{id: 10, at: ms(140)}, {id: 40, at: ms(410)}}, // 40's document stands in for 20's
		},
		{
			{{id: 15, at: ms(150)}, {id: 31, at: ms(290)}},
		},
		nil,
		{
			{{id: 12, at: ms(50)}},
		},
	}
	cmds := []liveCommand{
		{learner: 0, prev: 5, pos: 10, sent: ms(90), acked: ms(100), measured: true},
		{learner: 0, prev: 10, pos: 20, sent: ms(190), acked: ms(200), measured: true},
		{learner: 0, prev: 20, pos: 40, sent: ms(380), acked: ms(390), measured: false}, // in the warmup
		{learner: 1, prev: 5, pos: 15, sent: ms(120), acked: ms(160), measured: true},   // its message came first
		{learner: 1, prev: 15, pos: 30, sent: ms(250), acked: ms(260), measured: true},  // superseded by 31
		{learner: 2, prev: 5, pos: 12, sent: ms(100), acked: ms(110), measured: true},
		{learner: 3, prev: 12, pos: 20, sent: ms(290), acked: ms(300), measured: true}, // never came
	}
	res := &liveResult{each: newHistogram(), first: newHistogram(), last: newHistogram(), fromSend: newHistogram()}
	res.match(cmds, arrivals)

	got := map[string]int64{"delivered": res.delivered, "superseded": res.superseded, "missed": res.missed, "early": res.early,
		"unwatched": res.unwatched, "each": res.each.TotalCount(), "first": res.first.TotalCount(), "last": res.last.TotalCount()}
	want := map[string]int64{"delivered": 6, "superseded": 2, "missed": 1, "early": 1, "unwatched": 1, "each": 6, "first": 4, "last": 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	// Deliveries 5, 40, 30, 210, 0 (early) and 30 ms after the answer; from the sends 15, 50, 40,
	// 220, 30 and 40.
	for _, c := range []struct {
		name string
		got  int64
		want time.Duration
	}{
		{"each max", res.each.Max(), ms(210)}, {"first max", res.first.Max(), ms(30)}, {"last max", res.last.Max(), ms(210)},
		{"last min", res.last.Min(), 0}, {"from send max", res.fromSend.Max(), ms(220)}, {"from send min", res.fromSend.Min(), ms(15)},
	} {
		// The histograms keep 3 significant digits.
		if w := c.want.Microseconds(); math.Abs(float64(c.got-w)) > float64(w)/100+1 {
			t.Errorf("%s = %d µs, want %d", c.name, c.got, w)
		}
	}
}

func TestStreamTarget(t *testing.T) {
	// 4 learners, 2 targets: 10 streams, learner i%4.
	var got []int
	perLearner := map[int]map[int]bool{}
	for i := range 10 {
		target := streamTarget(i, 4, 2)
		got = append(got, target)
		if perLearner[i%4] == nil {
			perLearner[i%4] = map[int]bool{}
		}
		perLearner[i%4][target] = true
	}
	if diff := cmp.Diff([]int{0, 1, 0, 1, 1, 0, 1, 0, 0, 1}, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	for l, targets := range perLearner {
		if len(targets) != 2 {
			t.Errorf("learner %d has streams on targets %v, want both", l, targets)
		}
	}
}

func TestParseServerSample(t *testing.T) {
	at := func(delivered [4]float64, rss float64) string {
		return fmt.Sprintf(`# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes %g
process_cpu_seconds_total 12.5
edutrack_live_connections 3
edutrack_live_messages_sent_total{event="dashboards"} 10
edutrack_live_messages_sent_total{event="resync"} 2
edutrack_live_resyncs_total{reason="behind"} 2
edutrack_live_resyncs_total{reason="feed"} 0
edutrack_live_dropped_total 4
edutrack_live_delivery_seconds_bucket{le="0.01"} %g
edutrack_live_delivery_seconds_bucket{le="0.001"} %g
edutrack_live_delivery_seconds_bucket{le="0.1"} %g
edutrack_live_delivery_seconds_bucket{le="+Inf"} %g
edutrack_live_delivery_seconds_sum 1.5
edutrack_live_delivery_seconds_count %g
`, rss, delivered[1], delivered[0], delivered[2], delivered[3], delivered[3])
	}
	before, err := parseServerSample(at([4]float64{5, 5, 5, 5}, 1e6))
	if err != nil {
		t.Fatal(err)
	}
	if before.rss != 1e6 || before.cpu != 12.5 || before.connections != 3 || before.sent != 12 || before.resyncs != 2 || before.dropped != 4 {
		t.Errorf("sample = %+v", before)
	}
	// 100 more: 90 within 1 ms, 8 more within 10 ms, 2 more within 100 ms.
	after, err := parseServerSample(at([4]float64{95, 103, 105, 105}, 2e6))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q, want float64
	}{{0.5, 0.001}, {0.9, 0.001}, {0.95, 0.01}, {0.99, 0.1}} {
		if got := deliveryQuantile(before, after, c.q); got != c.want {
			t.Errorf("quantile %g = %g, want %g", c.q, got, c.want)
		}
	}
	if got := deliveryQuantile(before, before, 0.99); !math.IsNaN(got) {
		t.Errorf("quantile of no deliveries = %g, want NaN", got)
	}
}

func TestRunLive(t *testing.T) {
	// Two read processes of one deployment: the same fake behind two servers, each named.
	serve := func(t *testing.T, fake *fakeServer, name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fake.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), fakeServerKey{}, name)))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	// 4 clients x 2 learners: 20 streams give every learner 2 or 3.
	liveRun := func(addr string, live ...string) []string {
		return append([]string{"-addr", addr, "-phases", "live", "-lag-rate", "200", "-live-conns", "20",
			"-live-addrs", strings.Join(live, ",")}, smallRun...)
	}

	t.Run("times_every_message_on_streams_spread_over_two_servers", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		fake.live.resyncFirst = true
		a, b, writes := serve(t, fake, "a"), serve(t, fake, "b"), serve(t, fake, "w")
		var out bytes.Buffer
		// Courses enough that every command appends, and so changes its learner's dashboard.
		if err := run(t.Context(), append(liveRun(writes.URL, a.URL, b.URL), "-courses", "20"), &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Log("\n" + out.String())
		p, ok := decodeReport(t, out.String()).phase(phaseLive)
		if !ok || p.Live == nil {
			t.Fatal("report has no live phase")
		}
		l := p.Live
		if diff := cmp.Diff(map[string]int{a.URL: 10, b.URL: 10}, l.Opened); diff != "" {
			t.Errorf("streams opened by server (-want +got):\n%s", diff)
		}
		if p.Requests == 0 || p.Errors != 0 || l.OpenFailed != 0 || l.Unwatched != 0 {
			t.Errorf("%d commands, %d errors, %d streams failed, %d commands unwatched; want commands and nothing else",
				p.Requests, p.Errors, l.OpenFailed, l.Unwatched)
		}
		// Every command reaches the 2 or 3 streams of its learner.
		if l.Delivered < 2*p.Requests || l.Delivered > 3*p.Requests || l.Missed != 0 || l.Superseded != 0 || l.Ended != 0 {
			t.Errorf("%d delivered, %d missed, %d streams ended, for %d commands; want each on every stream of its learner",
				l.Delivered, l.Missed, l.Ended, p.Requests)
		}
		if l.Resyncs != 20 {
			t.Errorf("%d resyncs, want the one each stream was sent", l.Resyncs)
		}
		if l.DeliveryMs.Max <= 0 || l.FirstMs.P50 > l.LastMs.P50 || l.FromSendMs.Max < l.DeliveryMs.Max {
			t.Errorf("latencies: each %+v, first %+v, last %+v, from send %+v", l.DeliveryMs, l.FirstMs, l.LastMs, l.FromSendMs)
		}
		var sent float64
		for _, s := range l.Servers {
			// The fake grows by 1,000 bytes a stream, and counts the streams of each server.
			if s.BytesPerStream != 1000 || s.Connections != 10 || s.Error != "" {
				t.Errorf("server %s: %+v; want 1000 bytes and 10 connections per stream", s.Addr, s)
			}
			if s.DeliveryP99Within == nil || *s.DeliveryP99Within != 5 {
				t.Errorf("server %s: delivery p99 within %v ms, want 5", s.Addr, s.DeliveryP99Within)
			}
			sent += s.Sent
		}
		// The fake's CPU grows with the log.
		if l.Writer == nil || l.Writer.Addr != writes.URL || !(l.Writer.CPUCores > 0) {
			t.Errorf("writer %+v, want the CPU of %s", l.Writer, writes.URL)
		}
		// Every message the fake sent was received: the streams close after the last scrape.
		if sent != float64(l.Received) || l.Received < l.Delivered {
			t.Errorf("the servers count %g messages sent, the client received %d and delivered %d", sent, l.Received, l.Delivered)
		}
	})

	t.Run("fails_when_streams_are_refused", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		fake.live.limit = 15
		srv := serve(t, fake, "a")
		var out bytes.Buffer
		err := run(t.Context(), liveRun(srv.URL, srv.URL), &out)
		if err == nil || !strings.Contains(err.Error(), "5 of 20 streams could not be opened") {
			t.Fatalf("run returned %v, want 5 streams refused\n%s", err, out.String())
		}
		p, _ := decodeReport(t, out.String()).phase(phaseLive)
		if p.Live.OpenStatuses[http.StatusTooManyRequests] != 5 || !strings.Contains(out.String(), "HTTP 429: 5") {
			t.Errorf("open errors by status %v, want 5 of 429", p.Live.OpenStatuses)
		}
	})
}

// fakeServerKey names, in a request's context, the server of TestRunLive it came to.
type fakeServerKey struct{}

func fakeServerName(r *http.Request) string {
	name, _ := r.Context().Value(fakeServerKey{}).(string)
	return name
}

// fakeLive is the fake's GET /v1/live: streams of learner topics, each sent the position of
// every command that changed its learner's dashboard (under the fake's lock).
type fakeLive struct {
	// limit, when set, refuses streams past it with 429; resyncFirst sends each stream a resync
	// first.
	limit       int
	resyncFirst bool

	subs map[string]map[chan uint64]struct{} // by learner
	open map[string]int                      // by server
	sent map[string]int64                    // by server
}

func newFakeLive() fakeLive {
	return fakeLive{subs: map[string]map[chan uint64]struct{}{}, open: map[string]int{}, sent: map[string]int64{}}
}

// announce tells the streams of learner that its dashboard changed at position. Called with f.mu held.
func (f *fakeServer) announce(learner string, position int64) {
	for ch := range f.live.subs[learner] {
		select {
		case ch <- uint64(position):
		default:
		}
	}
}

func (f *fakeServer) stream(w http.ResponseWriter, r *http.Request) {
	server := fakeServerName(r)
	learner, ok := strings.CutPrefix(r.URL.Query().Get("topics"), "learner:")
	f.mu.Lock()
	total := 0
	for _, n := range f.live.open {
		total += n
	}
	switch {
	case !ok || f.users[learner] != "learner":
		f.mu.Unlock()
		http.Error(w, "no such learner", http.StatusNotFound)
		return
	case f.live.limit > 0 && total >= f.live.limit:
		f.mu.Unlock()
		http.Error(w, "too many streams", http.StatusTooManyRequests)
		return
	}
	ch := make(chan uint64, 64)
	if f.live.subs[learner] == nil {
		f.live.subs[learner] = map[chan uint64]struct{}{}
	}
	f.live.subs[learner][ch] = struct{}{}
	f.live.open[server]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.live.subs[learner], ch)
		f.live.open[server]--
		f.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if f.live.resyncFirst {
		fmt.Fprint(w, "event: resync\ndata: {\"reason\":\"behind\"}\n\n")
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	// A document longer than the client's line buffer.
	data := `{"learnerId":"` + learner + `","courses":"` + strings.Repeat("x", 1500) + `"}`
	for {
		select {
		case <-r.Context().Done():
			return
		case pos := <-ch:
			// Counted before it is sent, so that no scrape misses a message the client has.
			f.mu.Lock()
			f.live.sent[server]++
			f.mu.Unlock()
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", pos, documents.Dashboards, data)
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// liveMetrics writes what the live phase reads of server's /metrics: resident memory of
// 50 MB plus 1,000 bytes a stream, a millisecond of CPU per command, and every message
// delivered within 5 ms. Called with f.mu held.
func (f *fakeServer) liveMetrics(w http.ResponseWriter, server string) {
	open, sent := f.live.open[server], f.live.sent[server]
	fmt.Fprintf(w, "process_resident_memory_bytes %d\nprocess_cpu_seconds_total %g\n", 50_000_000+1000*open, float64(f.position)/1000)
	fmt.Fprintf(w, "edutrack_live_connections %d\nedutrack_live_messages_sent_total{event=\"dashboards\"} %d\n", open, sent)
	fmt.Fprintf(w, "edutrack_live_delivery_seconds_bucket{le=\"0.001\"} 0\nedutrack_live_delivery_seconds_bucket{le=\"0.005\"} %d\n", sent)
	fmt.Fprintf(w, "edutrack_live_delivery_seconds_bucket{le=\"+Inf\"} %d\nedutrack_live_delivery_seconds_count %d\n", sent, sent)
}
