package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
)

// tokenTTL is how long the tokens the tool mints are valid: longer than any run.
const tokenTTL = 6 * time.Hour

// adminPool is how many admin identities the unmeasured setup spreads its commands over, each
// with its own per-user budget: at the default 20/s, 64 of them carry the setup at up to
// 1,280 commands a second without a 429, as many school administrators would.
const adminPool = 64

// tokens mints the bearer tokens the tool sends, with the server's signing key (-token-key), the
// default issuer and audience, as `edutrack token` does: one per user the tool acts as, minted
// once and kept. A nil *tokens mints none, for a server with authentication disabled.
type tokens struct {
	key    []byte
	mu     sync.Mutex
	minted map[string]string // role + " " + subject: the Authorization header value
	admins [adminPool]string
	next   atomic.Uint64
}

// loadTokens reads the server's key from path; "" means no tokens.
func loadTokens(path string) (*tokens, error) {
	if path == "" {
		return nil, nil
	}
	key, err := auth.ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("-token-key: %w", err)
	}
	t := &tokens{key: key, minted: map[string]string{}}
	for i := range t.admins {
		if t.admins[i], err = t.mint(fmt.Sprintf("load-admin-%02d", i), domain.Admin); err != nil {
			return nil, fmt.Errorf("-token-key: %w", err)
		}
	}
	return t, nil
}

// bearer returns the Authorization header of sub in role, "" without tokens. The ids are the
// tool's own, valid by construction, so a failure is a bug.
func (t *tokens) bearer(sub string, role domain.Role) string {
	if t == nil {
		return ""
	}
	h, err := t.mint(sub, role)
	if err != nil {
		panic(err)
	}
	return h
}

func (t *tokens) mint(sub string, role domain.Role) (string, error) {
	k := string(role) + " " + sub
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.minted[k]; ok {
		return h, nil
	}
	tok, err := auth.Mint(t.key, auth.Claims{Subject: sub, Role: role, TTL: tokenTTL})
	if err != nil {
		return "", err
	}
	t.minted[k] = "Bearer " + tok
	return t.minted[k], nil
}

// admin returns the header of the next admin of the pool, in turn.
func (t *tokens) admin() string {
	if t == nil {
		return ""
	}
	return t.admins[t.next.Add(1)%adminPool]
}

// learner returns the API as learner id: dashboards read by their own learner record no
// disclosure, and each learner spends a budget of its own.
func (t *tokens) learner(a *api, id string) *api {
	if t == nil {
		return a
	}
	return a.as(t.bearer(id, domain.Learner))
}
