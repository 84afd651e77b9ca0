package main

import (
	"bytes"
	"context"
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

// api sends requests to the one server under test, over a shared pool of keep-alive connections.
type api struct {
	base      string
	http      *http.Client
	transport *http.Transport
}

// newAPI returns an api for the server at base, keeping up to conns connections open to it.
func newAPI(base string, conns int) *api {
	transport := &http.Transport{
		// No proxy from the environment: the tool talks to -addr and nothing else.
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

func (a *api) get(ctx context.Context, path string) error {
	return a.send(ctx, http.MethodGet, path, nil)
}

// post sends body, JSON or nil, to path.
func (a *api) post(ctx context.Context, path string, body []byte) error {
	return a.send(ctx, http.MethodPost, path, body)
}

// send makes one request. Any 2xx is success; any other status is a *statusError; any other error
// is the transport's.
func (a *api) send(ctx context.Context, method, path string, body []byte) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	// The transport reuses a connection only once its body was read to the end and closed.
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	return &statusError{method: method, path: path, status: resp.Status, code: resp.StatusCode,
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
