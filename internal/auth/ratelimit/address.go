package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// AddressBudget is the budget of a client address, for the requests of nobody in particular:
// those that offer no credentials spend it before anything else, and those whose credentials
// the authenticator refuses spend it once refused. The requests of authenticated callers do not
// spend it: they spend their caller's own budget (ByUser), so that a school whose pupils share
// one NAT address is not one client. Guessing tokens still costs the address: once refusals have
// spent its budget, its requests with credentials are answered 429 before they are checked,
// until the budget allows one again. That lock is kept in this process; the budget itself in the
// Limiter (shared through Redis).
type AddressBudget struct {
	limiter Limiter
	limit   Limit
	key     KeyFunc
	offers  func(r *http.Request) bool
	log     *slog.Logger
	now     func() time.Time

	mu        sync.Mutex
	locked    map[string]time.Time // until when each address's requests with credentials are refused
	lastSweep time.Time
}

// NewAddressBudget returns the budget of limit per address key names; offers says whether a
// request offers credentials (a bearer token, a ticket).
func NewAddressBudget(l Limiter, limit Limit, key KeyFunc, offers func(*http.Request) bool, log *slog.Logger) (*AddressBudget, error) {
	if l == nil || key == nil || offers == nil || log == nil {
		return nil, errors.New("ratelimit: NewAddressBudget needs a limiter, a key function, a credentials test and a logger")
	}
	if err := limit.validate(); err != nil {
		return nil, err
	}
	return &AddressBudget{limiter: l, limit: limit, key: key, offers: offers, log: log, now: time.Now, locked: map[string]time.Time{}}, nil
}

type admittedKey struct{}

// Before is the middleware that goes before the authenticator.
func (b *AddressBudget) Before(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, ok := b.key(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if !b.offers(r) {
			if d := b.limiter.Allow(r.Context(), k, b.limit); !d.Allowed {
				refuse(w, r, b.log, d.RetryAfter)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if wait := b.lockedFor(k); wait > 0 {
			refuse(w, r, b.log, wait)
			return
		}
		admitted := new(bool)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), admittedKey{}, admitted)))
		// Refused by the authenticator (401), the address pays for it; not when the credentials
		// could not be checked (a ticket store down answers 503), which is no client's doing.
		if *admitted || rec.status != http.StatusUnauthorized {
			return
		}
		if d := b.limiter.Allow(context.WithoutCancel(r.Context()), k, b.limit); !d.Allowed {
			b.lock(k, d.RetryAfter)
		}
	})
}

// Admitted is the middleware that goes right after the authenticator: a request that reaches it
// was authenticated, and spends nothing of its address's budget.
func (b *AddressBudget) Admitted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if admitted, ok := r.Context().Value(admittedKey{}).(*bool); ok {
			*admitted = true
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder keeps the status of the answer. Unwrap lets http.ResponseController reach
// the connection's writer, for the streams that flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (b *AddressBudget) lockedFor(k string) time.Duration {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.locked[k]
	if !ok {
		return 0
	}
	if !until.After(now) {
		delete(b.locked, k)
		return 0
	}
	return until.Sub(now)
}

func (b *AddressBudget) lock(k string, d time.Duration) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastSweep) > sweepEvery {
		for a, until := range b.locked {
			if !until.After(now) {
				delete(b.locked, a)
			}
		}
		b.lastSweep = now
	}
	b.locked[k] = now.Add(d)
}

// refuse answers 429 with the Retry-After of wait.
func refuse(w http.ResponseWriter, r *http.Request, log *slog.Logger, wait time.Duration) {
	secs := retrySeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeTooMany(w, r, log, secs)
}
