package live

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// Routes mounts GET /v1/live on streams, which must admit tickets as well as tokens
// (ticket.Authenticate) and must give requests no deadline, and POST /v1/live/tickets on api,
// behind the bearer authenticator.
func (h *Hub) Routes(streams, api chi.Router, tickets *ticket.Tickets) {
	streams.Get("/v1/live", h.Stream)
	api.Post("/v1/live/tickets", h.issue(tickets))
}

// issue answers a ticket for the caller, who must come with a bearer token.
func (h *Hub) issue(tickets *ticket.Tickets) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, err := access.Caller(r)
		if err == nil {
			err = problem.NoBody(r)
		}
		if err == nil {
			err = readhttp.OnlyParams(r)
		}
		if err != nil {
			problem.Write(w, r, h.log, err)
			return
		}
		t, err := tickets.Issue(r.Context(), caller)
		if err != nil {
			h.log.WarnContext(r.Context(), "live: issue a ticket", "err", err)
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, h.log, problem.New(http.StatusServiceUnavailable, "", "tickets cannot be issued right now; retry shortly"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(t)
	}
}

// errClosed means the process is stopping: the client should come back, to another process.
var errClosed = problem.New(http.StatusServiceUnavailable, "", "this process is shutting down; reconnect")

// Stream answers GET /v1/live: a stream of Server-Sent Events. Whatever would keep the caller
// from reading a topic (a bad parameter, a topic they may not read, a limit) answers a problem
// before the stream opens.
func (h *Hub) Stream(w http.ResponseWriter, r *http.Request) {
	c, leave, err := h.open(r)
	if err != nil {
		var pe *problem.Error
		switch {
		case !errors.As(err, &pe):
		case pe.Status == http.StatusTooManyRequests:
			// Streams end when their pages close; a few seconds usually frees one.
			w.Header().Set("Retry-After", "5")
		case pe.Status == http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "1")
		}
		problem.Write(w, r, h.log, err)
		return
	}
	if c == nil { // HEAD: the headers of a stream, and no stream
		streamHeaders(w)
		return
	}
	defer leave()
	h.serve(w, r, c)
}

// open checks the request, reserves the caller's streams, decides every topic, records the
// disclosures, and joins the stream to the hub. leave undoes it.
func (h *Hub) open(r *http.Request) (_ *conn, leave func(), err error) {
	if err := readhttp.OnlyParams(r, "topics", "since", "minPosition", ticket.Param, "reason"); err != nil {
		return nil, nil, err
	}
	caller, err := access.Caller(r)
	if err != nil {
		return nil, nil, err
	}
	topics, err := parseTopics(r, h.opts.MaxTopics)
	if err != nil {
		return nil, nil, err
	}
	c := &conn{actor: caller, user: caller.UserID, addr: h.opts.Address(r), topics: topics, teaches: map[string]bool{},
		out: make(chan item, h.opts.Buffer), wake: make(chan struct{}, 1), caught: map[string]uint64{}}
	// Last-Event-ID comes first: a browser reconnects to the URL it first opened, since= and all.
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		if c.since, err = strconv.ParseUint(id, 10, 64); err != nil {
			return nil, nil, problem.New(http.StatusBadRequest, "Last-Event-ID", "must be an id this stream sent: a non-negative integer")
		}
		c.hasSince = true
	} else if raw := r.URL.Query().Get("since"); raw != "" {
		if c.since, err = strconv.ParseUint(raw, 10, 64); err != nil {
			return nil, nil, problem.New(http.StatusBadRequest, "since", "must be a position: a non-negative integer")
		}
		c.hasSince = true
	}
	if r.Method == http.MethodHead {
		return nil, nil, nil
	}
	// A client that just changed something reads its own write, as on every read route.
	consistency := readhttp.Consistency{Positions: h.positions, Wait: h.opts.ConsistencyWait, Waits: h.opts.Waits}
	if err := consistency.WaitFor(r, projectionsOf(topics)...); err != nil {
		return nil, nil, err
	}
	if err := h.reserve(c); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			h.release(c)
		}
	}()
	reads, err := h.authorize(r, c)
	if err != nil {
		return nil, nil, err
	}
	for _, read := range reads {
		if err := read.Disclose(r.Context()); err != nil {
			return nil, nil, err
		}
	}
	if err := h.join(c); err != nil {
		return nil, nil, err
	}
	return c, func() { h.leave(c); h.release(c) }, nil
}

// reserve counts c against the caps of its user and its address.
func (h *Hub) reserve(c *conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return errClosed
	case h.users[c.user] >= h.opts.MaxPerUser:
		h.m.refused.WithLabelValues("per_user").Inc()
		return problem.New(http.StatusTooManyRequests, "",
			fmt.Sprintf("you have %d live streams open, the most one user may (EDUTRACK_LIVE_MAX_PER_USER); close one, or follow more topics on one", h.opts.MaxPerUser))
	case h.addrs[c.addr] >= h.opts.MaxPerAddress:
		h.m.refused.WithLabelValues("per_address").Inc()
		return problem.New(http.StatusTooManyRequests, "",
			fmt.Sprintf("%d live streams are open from your address, the most one address may (EDUTRACK_LIVE_MAX_PER_ADDRESS)", h.opts.MaxPerAddress))
	}
	h.users[c.user]++
	h.addrs[c.addr]++
	return nil
}

func (h *Hub) release(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range []struct {
		counts map[string]int
		key    string
	}{{h.users, c.user}, {h.addrs, c.addr}} {
		if x.counts[x.key]--; x.counts[x.key] <= 0 {
			delete(x.counts, x.key)
		}
	}
}

// join subscribes c to its topics, noting how far the hub has come: from here on every change
// of its topics is offered to it.
func (h *Hub) join(c *conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errClosed
	}
	c.base = map[string]uint64{}
	for _, p := range c.projs {
		// The catch-up reads the documents after this, so it shows every change up to the
		// position the projection has reached, whether or not the feed has brought the change
		// to the hub yet (it announces a commit after it): one that comes later is dropped as
		// not newer than what the catch-up sent.
		c.base[p] = max(h.high[p], h.positions.Position(p))
	}
	h.conns[c] = struct{}{}
	for _, t := range c.topics {
		if h.subs[t.name] == nil {
			h.subs[t.name] = map[*conn]struct{}{}
		}
		h.subs[t.name][c] = struct{}{}
	}
	h.m.connections.Inc()
	return nil
}

func (h *Hub) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	for _, t := range c.topics {
		delete(h.subs[t.name], c)
		if len(h.subs[t.name]) == 0 {
			delete(h.subs, t.name)
		}
	}
	h.m.connections.Dec()
}

func streamHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	// nginx would otherwise hold events back to fill its buffers.
	hd.Set("X-Accel-Buffering", "no")
}

// serve writes the stream until the client leaves, the client stops taking data, or the hub
// stops.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, c *conn) {
	rc := http.NewResponseController(w)
	// The server's read timeout would end the request's context mid-stream, and its write
	// timeout the stream itself: each write gets a deadline of its own instead.
	_ = rc.SetReadDeadline(time.Time{})
	write := func(parts ...[]byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	streamHeaders(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	if c.hasSince {
		if err := h.catchUp(r.Context(), c, write); err != nil {
			if r.Context().Err() == nil {
				h.log.Warn("live: catch-up of a stream failed; it is closed, to come back", "err", err)
			}
			return
		}
	}
	keepAlive := time.NewTicker(h.opts.KeepAlive)
	defer keepAlive.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			// Send what is held, then tell the client when to come back: each a little
			// differently, so that they do not all come back at once.
			for err == nil && len(c.out) > 0 {
				err = h.deliver(c, <-c.out, write)
			}
			if err == nil {
				retry := h.opts.Retry + rand.N(h.opts.Retry)
				write(fmt.Appendf(nil, "retry: %d\n\n", retry.Milliseconds()))
			}
			return
		case it := <-c.out:
			err = h.deliver(c, it, write)
		case <-c.wake:
		case <-keepAlive.C:
			err = write([]byte(": keep-alive\n\n"))
		}
		if err == nil {
			err = h.resyncIfBehind(c, write)
		}
		if err != nil {
			return // the client is gone or stopped reading; it comes back with Last-Event-ID
		}
	}
}

// deliver writes one frame, unless the client has its document already: it said it has what
// came up to since, or the catch-up sent the document as new or newer. What counts is the
// document's position, not the change's: a change the client has can come late, carrying a
// document read after a later one it has not (and the hub sends that document only once).
func (h *Hub) deliver(c *conn, it item, write func(...[]byte) error) error {
	id := it.id
	if c.hasSince {
		if it.f.doc <= c.since {
			return nil
		}
		// The client has everything up to since, by its own word, and up to where the catch-up
		// ended. That can be past the frame's id: the catch-up counts what the projections
		// have reached, which in a read process can be ahead of what the feed has brought (a
		// feed that lost messages, say); without it the ids would go back.
		id = max(id, c.since, c.caughtUpTo)
	}
	if at, ok := c.caught[it.f.key]; ok && it.f.doc <= at {
		return nil
	}
	if err := write(fmt.Appendf(nil, "id: %d\n", id), it.f.wire); err != nil {
		return err
	}
	h.m.sent.WithLabelValues(it.f.event).Inc()
	if !it.f.at.IsZero() {
		h.m.delivery.Observe(time.Since(it.f.at).Seconds())
	}
	return nil
}

// resyncIfBehind tells a stream the hub gave nothing to that it missed messages: after the
// messages it still holds, which came before the gap, and before any that come after it.
func (h *Hub) resyncIfBehind(c *conn, write func(...[]byte) error) error {
	reason := c.behind.Load()
	if reason == reasonNone {
		return nil
	}
	for len(c.out) > 0 {
		if err := h.deliver(c, <-c.out, write); err != nil {
			return err
		}
	}
	// From here the hub offers again; what it offers now comes after the resync.
	c.behind.Store(reasonNone)
	h.m.resyncs.WithLabelValues(reasons[reason]).Inc()
	h.m.sent.WithLabelValues(EventResync).Inc()
	return write(resyncMessage(reasons[reason]))
}
