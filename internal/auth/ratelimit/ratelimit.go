// Package ratelimit caps how fast each client and each user may call EduTrack, answering 429
// with Retry-After past the budget. Budgets live in process memory, or in Redis so that every
// EduTrack process draws on the same one.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"time"

	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/clientip"
	"github.com/edutrack/edutrack/internal/problem"
)

// Limit is a budget: Requests per Period on average, with up to Burst of them at once.
type Limit struct {
	Requests int
	Period   time.Duration
	// Burst is how many requests may come back to back (default Requests).
	Burst int
}

// interval and tolerance are the limit in the terms of the generic cell rate algorithm (GCRA)
// both limiters run: one request per interval, up to tolerance ahead of schedule.
func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Requests) }

func (l Limit) tolerance() time.Duration { return l.interval() * time.Duration(l.burst()) }

func (l Limit) burst() int {
	if l.Burst == 0 {
		return l.Requests
	}
	return l.Burst
}

func (l Limit) validate() error {
	if l.Requests <= 0 || l.Period <= 0 || l.Burst < 0 {
		return fmt.Errorf("ratelimit: limit %d per %s, burst %d: want positive requests and period", l.Requests, l.Period, l.Burst)
	}
	// Redis keeps time in microseconds.
	if l.interval() < time.Microsecond {
		return fmt.Errorf("ratelimit: %d requests per %s is more than one per microsecond", l.Requests, l.Period)
	}
	return nil
}

// Decision is a limiter's answer: whether the request fits, and if not, when one would.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration
}

// Limiter spends one request of key's budget under l. Implementations must not fail: a limiter
// whose store is down decides on its own.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) Decision
}

// KeyFunc names the budget a request draws on, or returns false to leave it unlimited.
type KeyFunc func(r *http.Request) (key string, ok bool)

// ByIP draws on one budget per client address, as res finds it. IPv6 clients are counted per
// /64, the block one subscriber usually gets, or each could use millions of budgets.
func ByIP(res *clientip.Resolver) KeyFunc {
	return func(r *http.Request) (string, bool) {
		a := res.ClientIP(r)
		if a.Is6() {
			return "ip:" + netip.PrefixFrom(a, 64).Masked().String(), true
		}
		return "ip:" + a.String(), true // a Unix socket's invalid address is one budget
	}
}

// ByUser draws on one budget per authenticated subject. Requests without a principal are left
// to ByIP, so it goes after the authenticator.
func ByUser() KeyFunc {
	return func(r *http.Request) (string, bool) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			return "", false
		}
		return "user:" + p.UserID, true
	}
}

// Middleware returns middleware that spends one request of key's budget under limit per request
// and answers 429 when it is spent.
func Middleware(l Limiter, limit Limit, key KeyFunc, log *slog.Logger) (func(http.Handler) http.Handler, error) {
	if l == nil || key == nil || log == nil {
		return nil, errors.New("ratelimit: Middleware needs a limiter, a key function and a logger")
	}
	if err := limit.validate(); err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k, ok := key(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			if d := l.Allow(r.Context(), k, limit); !d.Allowed {
				refuse(w, r, log, d.RetryAfter)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func writeTooMany(w http.ResponseWriter, r *http.Request, log *slog.Logger, secs int) {
	problem.Write(w, r, log, problem.New(http.StatusTooManyRequests, "", fmt.Sprintf("too many requests; retry in %d s", secs)))
}

// retrySeconds rounds up: a client that retries at the second Retry-After names must fit.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
