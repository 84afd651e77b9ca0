package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// requestTimeout bounds one request, so a phase ends at most this long after its duration even if
// the server stops answering.
const requestTimeout = 30 * time.Second

// api sends requests to one server, over a shared pool of keep-alive connections: the server
// under test, or for the static phase the server -static-url names.
type api struct {
	base      string
	http      *http.Client
	transport *http.Transport
	// authorization is the Authorization header of each request, if not nil and not "".
	authorization func() string
}

// newAPI returns an api for the server at base, keeping up to conns connections open to it. With
// base "", every path is a whole URL.
func newAPI(base string, conns int) *api {
	transport := &http.Transport{
		// No proxy from the environment: the tool talks to -addr and -static-url and nothing else.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		// With fewer idle slots than clients, connections would be closed and redialled under
		// load, and the run would measure TCP handshakes.
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		// Compression would add the same cost to both phases and hide the difference measured.
		DisableCompression: true,
	}
	return &api{
		base:      base,
		transport: transport,
		http: &http.Client{
			Transport: transport,
			Timeout:   requestTimeout,
			// A redirect could point at another host; a 3xx is reported as an error instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (a *api) close() { a.transport.CloseIdleConnections() }

// as returns an api on the same connections that sends header as its Authorization ("" none).
func (a *api) as(header string) *api {
	c := *a
	c.authorization = func() string { return header }
	return &c
}

// asEach returns an api on the same connections that sends header() as its Authorization,
// called for each request.
func (a *api) asEach(header func() string) *api {
	c := *a
	c.authorization = header
	return &c
}

func (a *api) get(ctx context.Context, path string) error {
	_, _, err := a.send(ctx, http.MethodGet, path, nil, false)
	return err
}

// read GETs path and returns the size of the body answered.
func (a *api) read(ctx context.Context, path string) (int64, error) {
	_, n, err := a.send(ctx, http.MethodGet, path, nil, false)
	return n, err
}

// fetch GETs path and returns the body answered.
func (a *api) fetch(ctx context.Context, path string) ([]byte, error) {
	b, _, err := a.send(ctx, http.MethodGet, path, nil, true)
	return b, err
}

// command posts body, JSON or nil, to path and returns the log position the server answered:
// every command answers {"id", "version", "position"}. An answer without a position is an
// *answerError.
func (a *api) command(ctx context.Context, path string, body []byte) (uint64, error) {
	b, _, err := a.send(ctx, http.MethodPost, path, body, true)
	if err != nil {
		return 0, err
	}
	var ans struct {
		Position *uint64 `json:"position"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Position == nil {
		return 0, &answerError{method: http.MethodPost, path: path, body: string(b[:min(len(b), 200)])}
	}
	return *ans.Position, nil
}

// maxKeptBody bounds a body send keeps in memory; the tool keeps only small answers and
// /metrics.
const maxKeptBody = 64 << 20

// send makes one request and returns the body if keep is set, and the body's size. Any 2xx is
// success; any other status is a *statusError; any other error is the transport's.
func (a *api) send(ctx context.Context, method, path string, body []byte, keep bool) ([]byte, int64, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if a.authorization != nil {
		if h := a.authorization(); h != "" {
			req.Header.Set("Authorization", h)
		}
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	// The transport reuses a connection only once its body was read to the end and closed.
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if !keep {
			n, err := io.Copy(io.Discard, resp.Body)
			return nil, n, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeptBody+1))
		if err == nil && len(b) > maxKeptBody {
			err = fmt.Errorf("%s %s: body over %d bytes", method, path, maxKeptBody)
		}
		return b, int64(len(b)), err
	}
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil, 0, &statusError{method: method, path: path, status: resp.Status, code: resp.StatusCode,
		detail: strings.TrimSpace(string(detail))}
}

// statusError is a response outside 2xx.
type statusError struct {
	method, path string
	status       string
	code         int
	detail       string // the start of the body, usually application/problem+json
}

func (e *statusError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("%s %s: %s", e.method, e.path, e.status)
	}
	return fmt.Sprintf("%s %s: %s: %s", e.method, e.path, e.status, e.detail)
}

// answerError is a 2xx answer to a command that does not say the command's log position.
type answerError struct {
	method, path string
	body         string // the start of the answer
}

func (e *answerError) Error() string {
	return fmt.Sprintf("%s %s: answer has no log position: %q", e.method, e.path, e.body)
}
