// Package testferret runs FerretDB, a MongoDB wire-protocol server on SQLite, inside the test
// process, so that Mongo adapters are tested against a real server without a MongoDB install.
//
// FerretDB is embedded rather than run as a binary: built with go install it crashed at start.
// It is for correctness only: it uses no index for lookups, so keep test data small and never
// benchmark through it. It hangs on one update command of 50 or more statements, so writers
// under test must split their bulk writes below that.
package testferret

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is one FerretDB listening on a free loopback port, storing in its own directory.
type Server struct {
	uri    string
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	logs   *syncBuffer
}

// ferretdb.New writes a package-level variable of FerretDB's, so two servers must not be
// created at the same moment (the race detector would fail the test).
var newMu sync.Mutex

// New starts a server. Its logs are kept in memory, for Logs, rather than printed. Close stops
// it and removes its data.
func New() (*Server, error) {
	dir, err := os.MkdirTemp("", "testferret-")
	if err != nil {
		return nil, fmt.Errorf("create ferretdb directory: %w", err)
	}
	logs := &syncBuffer{}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	newMu.Unlock()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{dir: dir, cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx) // it only ever returns nil, once ctx is done
	}()
	// MongoDBURI waits until Run has bound the listener.
	s.uri = f.MongoDBURI()
	return s, nil
}

// URI is the server's mongodb:// address.
func (s *Server) URI() string { return s.uri }

// Logs returns what the server logged at warning level and above.
func (s *Server) Logs() string { return s.logs.String() }

// Close stops the server, waits until its connections and backend are closed, and removes its
// data. Disconnect clients first: FerretDB closes their connections under them.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove ferretdb directory: %w", err)
	}
	return nil
}

// Start starts a server for t and stops it when t and its subtests end. Its logs are printed
// only if t failed. Register clients' cleanups after calling Start, so that they run first.
func Start(t testing.TB) (uri string) {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatalf("start ferretdb: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stop ferretdb: %v", err)
		}
		if logs := s.Logs(); t.Failed() && logs != "" {
			t.Logf("ferretdb logs:\n%s", logs)
		}
	})
	return s.URI()
}

// syncBuffer is a bytes.Buffer that FerretDB's goroutines may write to at once.
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
