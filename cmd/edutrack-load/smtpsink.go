package main

import (
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the SMTP server the jobs phase points the server's emails at: it accepts every message
// and keeps, per kind (the Message-ID's part before the first '.', such as enrollment_email), when
// each arrived, and how many Message-IDs arrived more than once.
type sink struct {
	srv *smtp.Server
	l   net.Listener

	mu      sync.Mutex
	arrived map[string][]time.Time
	seen    map[string]bool
	dups    map[string]int
	bad     int // messages without a Message-ID the tool can read
}

// startSink listens on addr and serves SMTP until close.
func startSink(addr string) (*sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	s := &sink{l: l, arrived: map[string][]time.Time{}, seen: map[string]bool{}, dups: map[string]int{}}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *sink) addr() string { return s.l.Addr().String() }

func (s *sink) close() {
	s.l.Close()
	s.srv.Close()
}

// accept records one message that arrived at t.
func (s *sink) accept(data []byte, t time.Time) {
	id := ""
	if m, err := mail.ReadMessage(strings.NewReader(string(data))); err == nil {
		id = strings.Trim(strings.TrimSpace(m.Header.Get("Message-Id")), "<>")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	local, _, _ := strings.Cut(id, "@")
	kind, _, ok := strings.Cut(local, ".")
	if !ok || kind == "" {
		s.bad++
		return
	}
	if s.seen[id] {
		s.dups[kind]++
		return
	}
	s.seen[id] = true
	s.arrived[kind] = append(s.arrived[kind], t)
}

// count is how many distinct messages of kind arrived.
func (s *sink) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived[kind])
}

// arrivals are when each distinct message of kind arrived, in order, and how many copies of
// Message-IDs already seen arrived besides.
func (s *sink) arrivals(kind string) ([]time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrived[kind]...), s.dups[kind]
}

// unreadable is how many messages had no Message-ID of the form kind.rest.
func (s *sink) unreadable() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// waitCount waits until n distinct messages of kind arrived, timeout passed, or none arrived
// for stall (a server with no SMTP URL, or pointed elsewhere, sends nothing); it returns how many
// did.
func (s *sink) waitCount(kind string, n int, timeout, stall time.Duration, done <-chan struct{}) int {
	deadline := time.Now().Add(timeout)
	got, moved := s.count(kind), time.Now()
	for {
		if got >= n || time.Now().After(deadline) || time.Since(moved) > stall {
			return got
		}
		select {
		case <-done:
			return got
		case <-time.After(20 * time.Millisecond):
		}
		if c := s.count(kind); c != got {
			got, moved = c, time.Now()
		}
	}
}

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct{ s *sink }

func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.accept(b, time.Now())
	return nil
}

func (*sinkSession) Reset() {}

func (*sinkSession) Logout() error { return nil }
