package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	key, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := loadTokens(filepath.Join(dir, auth.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(key, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(header string) domain.Actor {
		t.Helper()
		a, err := v.Verify(context.Background(), strings.TrimPrefix(header, "Bearer "))
		if err != nil {
			t.Fatalf("the server's verifier refuses %q: %v", header, err)
		}
		return a
	}

	if a := verify(tok.bearer("ada", domain.Learner)); a != (domain.Actor{UserID: "ada", Role: domain.Learner}) {
		t.Errorf("learner token names %+v", a)
	}
	tok.bearer("ada", domain.Learner)
	if n := len(tok.minted); n != adminPool+1 {
		t.Errorf("%d tokens kept after the pool and ada twice, want %d: one per user", n, adminPool+1)
	}
	admins := map[string]bool{}
	for range adminPool {
		a := verify(tok.admin())
		if a.Role != domain.Admin {
			t.Fatalf("admin token has role %s", a.Role)
		}
		admins[a.UserID] = true
	}
	if len(admins) != adminPool {
		t.Errorf("%d admins in %d turns, want %d: the setup spreads over the pool", len(admins), adminPool, adminPool)
	}

	// Each api sends its own user's token, over the same connections.
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer srv.Close()
	base := newAPI(srv.URL, 2)
	defer base.close()
	for _, a := range []*api{base, tok.learner(base, "ada"), tok.learner(base, "bob")} {
		if err := a.get(context.Background(), "/"); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"", tok.bearer("ada", domain.Learner), tok.bearer("bob", domain.Learner)}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d sent Authorization %q, want %q", i, got[i], want[i])
		}
	}

	if tok, err := loadTokens(""); tok != nil || err != nil {
		t.Errorf("no -token-key: %v, %v; want no tokens and no error", tok, err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTokens(short); err == nil {
		t.Error("a key under 32 bytes: no error")
	}
}
