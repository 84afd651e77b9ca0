package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// arrival is one message a stream received: its id, and when, since the phase began.
type arrival struct {
	id uint64
	at time.Duration
}

// stream is one GET /v1/live of the live phase, on a connection of its own. It is read by one
// goroutine, with small buffers and no http.Client: ten thousand of them share the cores with
// the server, and the client's cost must not be what the phase measures.
type stream struct {
	conn net.Conn
	body io.Reader
	// arrivals are the messages with an id, in the order received; resyncs counts the resync
	// messages. Only the reading goroutine writes them, and they are read once it has ended.
	arrivals []arrival
	resyncs  int64
	// received counts the messages with an id of every stream of the phase.
	received *atomic.Int64
	// err is why the stream ended, if the server ended it or it broke (not if the phase closed it).
	err error
}

// openStream dials the server at base (http://host:port), GETs /v1/live?topics=topic and checks
// the answer is a 200 event stream, with authorization as its Authorization header if not "".
// Any other answer is a *statusError.
func openStream(ctx context.Context, base, topic, authorization string) (*stream, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("live streams: %s: only http:// is supported", base)
	}
	path := "/v1/live?topics=" + url.QueryEscape(topic)
	return dialStream(ctx, u.Host, path, authorization)
}

// dialStream opens GET path on a connection of its own to host.
func dialStream(ctx context.Context, host, path, authorization string) (*stream, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	// The open is bounded; the stream then has no deadline.
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\nUser-Agent: edutrack-load\r\n"
	if authorization != "" {
		req += "Authorization: " + authorization + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, &statusError{method: http.MethodGet, path: path, status: resp.Status, code: resp.StatusCode,
			detail: strings.TrimSpace(string(detail))}
	}
	_ = conn.SetDeadline(time.Time{})
	// resp.Body undoes the chunked encoding, reading from br.
	return &stream{conn: conn, body: resp.Body}, nil
}

// read takes messages until the stream ends, timing each against start. closing tells it the
// phase closed the connection, which is then no error.
func (s *stream) read(start time.Time, closing func() bool) {
	err := readEvents(s.body, func(e sseEvent) {
		switch {
		case e.event == "resync":
			s.resyncs++
		case e.hasID:
			s.arrivals = append(s.arrivals, arrival{id: e.id, at: time.Since(start)})
			s.received.Add(1)
		}
	})
	if !closing() {
		if err == nil {
			err = errors.New("the server ended the stream")
		}
		s.err = err
	}
}

func (s *stream) close() { s.conn.Close() }

// sseEvent is what the live phase looks at in one Server-Sent Event: its name and its id.
type sseEvent struct {
	event string
	id    uint64
	hasID bool
}

// readEvents calls each for every message of an event stream (comments and retry: lines are no
// messages) until r ends, and returns r's error, or nil at its end. The data lines, whole
// documents, are skipped unread: a line longer than the buffer is dropped in pieces.
func readEvents(r io.Reader, each func(sseEvent)) error {
	lr := bufio.NewReaderSize(r, 512)
	var e sseEvent
	inMessage, skipping := false, false
	for {
		line, err := lr.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			skipping, inMessage = true, true
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if skipping { // the end of a long line: a data line
			skipping = false
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if inMessage {
				each(e)
			}
			e, inMessage = sseEvent{}, false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "":
			// A comment, such as a keep-alive.
		case "event":
			e.event, inMessage = string(value), true
		case "id":
			if id, err := strconv.ParseUint(string(value), 10, 64); err == nil {
				e.id, e.hasID = id, true
			}
			inMessage = true
		case "data":
			inMessage = true
		}
	}
}
