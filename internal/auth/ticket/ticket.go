// Package ticket lets a browser open a live stream without a bearer token in its URL: a caller
// who holds a token trades it for a ticket (short-lived, single-use, bound to that caller) and
// the stream's URL carries the ticket instead. EventSource cannot send an Authorization header,
// and URLs end up in proxy logs, where a ticket is spent or expired by the time anyone reads it.
// Tickets live in process memory, or in Redis so that any read process takes the ticket
// another one issued.
package ticket

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
)

// DefaultTTL is how long a ticket may wait to be used: long enough for a page to open its
// stream, too short to be worth stealing from a log.
const DefaultTTL = 30 * time.Second

// ErrInvalid means the ticket was never issued, was used already, or expired; the three are
// not told apart.
var ErrInvalid = errors.New("the ticket is unknown, used or expired")

// Ticket is what a caller gets for its token.
type Ticket struct {
	Value     string    `json:"ticket"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Store keeps issued tickets until they are taken or expire. Keys are digests of tickets, never
// the tickets themselves, so that what the store holds (and Redis's MONITOR shows) cannot be
// used.
type Store interface {
	// Put keeps a under key for ttl.
	Put(ctx context.Context, key string, a domain.Actor, ttl time.Duration) error
	// Take returns key's caller and forgets it, atomically: of two takers at most one gets it.
	// It returns ErrInvalid when the key is unknown, taken or expired.
	Take(ctx context.Context, key string) (domain.Actor, error)
}

// Tickets issues and redeems tickets.
type Tickets struct {
	store Store
	ttl   time.Duration
	now   func() time.Time
}

// New returns tickets kept in store that live ttl (DefaultTTL if 0).
func New(store Store, ttl time.Duration) (*Tickets, error) {
	if store == nil {
		return nil, errors.New("ticket: New needs a store")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Tickets{store: store, ttl: ttl, now: time.Now}, nil
}

// valueBytes is a ticket's randomness: 256 bits, beyond guessing within its life.
const valueBytes = 32

// Issue makes a ticket for a, who must be an authenticated caller: a ticket for EduTrack
// itself (an actor without a role) would open doors no caller may.
func (t *Tickets) Issue(ctx context.Context, a domain.Actor) (Ticket, error) {
	if a.System() || a.UserID == "" {
		return Ticket{}, errors.New("ticket: only an authenticated caller gets a ticket")
	}
	var b [valueBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	v := base64.RawURLEncoding.EncodeToString(b[:])
	if err := t.store.Put(ctx, key(v), a, t.ttl); err != nil {
		return Ticket{}, fmt.Errorf("keep a ticket: %w", err)
	}
	return Ticket{Value: v, ExpiresAt: t.now().Add(t.ttl).UTC().Truncate(time.Second)}, nil
}

// Redeem returns the caller a ticket was issued to, once. A value that no ticket could have is
// refused without asking the store.
func (t *Tickets) Redeem(ctx context.Context, value string) (domain.Actor, error) {
	if b, err := base64.RawURLEncoding.DecodeString(value); err != nil || len(b) != valueBytes {
		return domain.Actor{}, ErrInvalid
	}
	return t.store.Take(ctx, key(value))
}

func key(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// Param is the query parameter that carries a ticket.
const Param = "ticket"

// tokenParams are the names clients put bearer tokens under in URLs (RFC 6750 section 2.3's
// access_token, and the usual others). They are refused, not ignored: the token is out in
// the open already, and the client must learn not to do it again.
var tokenParams = map[string]bool{"access_token": true, "token": true, "id_token": true, "bearer": true, "jwt": true,
	"authorization": true, "auth": true}

// Authenticate is middleware that admits a request by the ticket in its query, or else passes
// it to bearer, the authenticator of tokens in the Authorization header. A request with both is
// refused (400): which caller would it be? So is a token in the query string (400). A ticket that is refused answers 401, like a bad
// token. Neither the ticket nor anything about it is logged.
func Authenticate(t *Tickets, bearer func(http.Handler) http.Handler, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		byToken := bearer(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			for name := range q {
				if tokenParams[strings.ToLower(name)] {
					problem.Write(w, r, log, problem.New(http.StatusBadRequest, name,
						"a token does not belong in a URL, where proxies log it: send it in the Authorization header, or trade it for a ticket (POST /v1/live/tickets)"))
					return
				}
			}
			if !q.Has(Param) {
				byToken.ServeHTTP(w, r)
				return
			}
			if r.Header.Get("Authorization") != "" {
				problem.Write(w, r, log, problem.New(http.StatusBadRequest, Param, "send a ticket or an Authorization header, not both"))
				return
			}
			if len(q[Param]) > 1 {
				problem.Write(w, r, log, problem.New(http.StatusBadRequest, Param, "is given more than once"))
				return
			}
			a, err := t.Redeem(r.Context(), q.Get(Param))
			switch {
			case errors.Is(err, ErrInvalid):
				w.Header().Set("WWW-Authenticate", `Bearer realm="edutrack", error="invalid_token", error_description="the ticket is unknown, used or expired"`)
				problem.Write(w, r, log, problem.New(http.StatusUnauthorized, Param, "the ticket is unknown, used or expired; get a new one from POST /v1/live/tickets"))
				return
			case err != nil:
				// The store failed, not the caller: a 503 they may retry.
				log.WarnContext(r.Context(), "redeem a ticket", "err", err)
				w.Header().Set("Retry-After", "1")
				problem.Write(w, r, log, problem.New(http.StatusServiceUnavailable, "", "tickets cannot be checked right now; retry shortly"))
				return
			}
			observe.SetUser(r.Context(), a.UserID)
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), a)))
		})
	}
}

// Memory keeps tickets in this process: enough where one process serves the streams.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	tickets map[string]held
	swept   time.Time
}

type held struct {
	actor   domain.Actor
	expires time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, tickets: map[string]held{}}
}

// Put implements Store. Expired tickets that nobody took are swept now and then as new ones
// come, so the map holds about one ttl's worth of tickets.
func (m *Memory) Put(_ context.Context, key string, a domain.Actor, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.swept) > ttl {
		for k, h := range m.tickets {
			if !now.Before(h.expires) {
				delete(m.tickets, k)
			}
		}
		m.swept = now
	}
	m.tickets[key] = held{actor: a, expires: now.Add(ttl)}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string) (domain.Actor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.tickets[key]
	delete(m.tickets, key)
	if !ok || !m.now().Before(h.expires) {
		return domain.Actor{}, ErrInvalid
	}
	return h.actor, nil
}

var _ Store = (*Memory)(nil)
