package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/clientip"
	"github.com/edutrack/edutrack/internal/auth/ratelimit"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	readaccess "github.com/edutrack/edutrack/readapi/access"
)

// newAuthenticator returns the authenticator cfg asks for: tokens of the OIDC provider, tokens
// signed with the configured key, or, by default, with the key kept in the data dir (generated
// on first start). Only EDUTRACK_AUTH=disabled turns it off.
func newAuthenticator(ctx context.Context, cfg config, log *slog.Logger) (*auth.Authenticator, error) {
	a := cfg.access
	opts := auth.Options{Issuer: a.issuer, Audience: a.audience, RoleClaim: a.roleClaim}
	switch {
	case a.disabled:
		return auth.NewDisabledAuthenticator(log)
	case a.oidcIssuer != "":
		opts.Issuer = a.oidcIssuer
		v, err := auth.NewOIDCVerifier(ctx, log, opts)
		if err != nil {
			return nil, err
		}
		log.Info("authentication: bearer tokens of the OIDC provider", "issuer", a.oidcIssuer, "audience", a.audience)
		return auth.NewAuthenticator(v, log)
	}
	key := a.jwtKey
	if key == nil {
		path := filepath.Join(cfg.dataDir, auth.KeyFileName)
		_, err := os.Stat(path)
		created := errors.Is(err, fs.ErrNotExist)
		if key, err = auth.LoadOrCreateKey(cfg.dataDir); err != nil {
			return nil, err
		}
		if created {
			log.Info("authentication: generated the token signing key", "path", path)
		}
		log.Info("authentication: bearer tokens signed with the key in the data dir; mint one with: edutrack token --data-dir "+
			cfg.dataDir+" --sub ID --role admin", "path", path)
	} else {
		log.Info("authentication: bearer tokens signed with the configured key; mint one with: edutrack token --sub ID --role admin")
	}
	v, err := auth.NewVerifier(key, opts)
	if err != nil {
		return nil, err
	}
	return auth.NewAuthenticator(v, log)
}

// newLimiter returns the limiter of the request budgets: in Redis when the deployment has one,
// so that every process draws on the same budgets, else in this process. close releases it.
func newLimiter(cfg config, reg prometheus.Registerer, log *slog.Logger) (l ratelimit.Limiter, close func() error, err error) {
	if cfg.redisURL == "" {
		return ratelimit.NewMemory(), func() error { return nil }, nil
	}
	o, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("rate limits in Redis: %w", err)
	}
	// Without it go-redis ignores the per-decision deadline on socket reads.
	o.ContextTimeoutEnabled = true
	o.DialerRetries = 1
	o.MinIdleConns = 2
	client := redis.NewClient(o)
	// Connect now: a decision that had to dial Redis first would often miss its 50 ms and be
	// made by this process alone, outside the shared budget. Redis being down is not fatal.
	pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := client.Ping(pctx).Err(); err != nil {
		log.Warn("rate limits: Redis does not answer yet; each process limits alone until it does", "err", err)
	}
	cancel()
	rl, err := ratelimit.NewRedis(client, log, ratelimit.RedisOptions{})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	errs := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "ratelimit",
		Name: "redis_errors_total", Help: "Rate limit decisions Redis failed, which the process made alone."},
		func() float64 { return float64(rl.Errors()) })
	state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "ratelimit",
		Name: "circuit_state", Help: "The rate limits' Redis circuit breaker: 0 closed (budgets shared in Redis), " +
			"1 half-open (probing), 2 open (each process decides alone)."},
		func() float64 { return float64(rl.CircuitState()) })
	for _, c := range []prometheus.Collector{errs, state} {
		if err := reg.Register(c); err != nil {
			client.Close()
			return nil, nil, err
		}
	}
	return rl, client.Close, nil
}

// v1Middleware is what every /v1 request passes, outermost first: the server's deadline; the
// budget of the client's address, which requests without credentials spend before anything
// else and refused credentials once refused, so that guessing tokens costs it too; the
// authenticator; and the budget of the caller, which authenticated requests spend instead of
// the address's (ratelimit.AddressBudget): a school behind one NAT address is many callers.
func v1Middleware(cfg config, authn *auth.Authenticator, limiter ratelimit.Limiter, log *slog.Logger) ([]func(http.Handler) http.Handler, error) {
	mw, err := budgeted(cfg, authn.Middleware, limiter, log)
	if err != nil {
		return nil, err
	}
	return append([]func(http.Handler) http.Handler{deadline(cfg.access.requestTimeout)}, mw...), nil
}

// publicMiddleware is what a /v1 request that takes no token passes (a certificate's
// verification): the server's deadline and the budget of the client's address.
func publicMiddleware(cfg config, limiter ratelimit.Limiter, log *slog.Logger) ([]func(http.Handler) http.Handler, error) {
	mw, err := signedMiddleware(cfg, limiter, log)
	return append([]func(http.Handler) http.Handler{deadline(cfg.access.requestTimeout)}, mw...), err
}

// signedMiddleware is what a request to a signed link passes: the budget of the client's
// address, and no deadline, since an upload or a download lasts as long as the file takes
// (the link's expiry and the route's own timeout bound it).
func signedMiddleware(cfg config, limiter ratelimit.Limiter, log *slog.Logger) ([]func(http.Handler) http.Handler, error) {
	var mw []func(http.Handler) http.Handler
	if lim := cfg.access.perIP; lim != (ratelimit.Limit{}) {
		byIP, err := ratelimit.Middleware(limiter, lim, ratelimit.ByIP(clientip.New(cfg.access.trustedProxies...)), log)
		if err != nil {
			return nil, err
		}
		mw = append(mw, byIP)
	}
	return mw, nil
}

// streamMiddleware is what a live stream's request passes: the same budgets as every /v1
// request, an authenticator that takes a ticket in the URL as well as a token in the header,
// and no deadline, since a stream lasts as long as its page.
func streamMiddleware(cfg config, authn *auth.Authenticator, tickets *ticket.Tickets, limiter ratelimit.Limiter, log *slog.Logger) ([]func(http.Handler) http.Handler, error) {
	return budgeted(cfg, ticket.Authenticate(tickets, authn.Middleware, log), limiter, log)
}

// budgeted puts authenticate between the budget of the client's address and that of the caller.
func budgeted(cfg config, authenticate func(http.Handler) http.Handler, limiter ratelimit.Limiter, log *slog.Logger) ([]func(http.Handler) http.Handler, error) {
	var mw []func(http.Handler) http.Handler
	if lim := cfg.access.perIP; lim != (ratelimit.Limit{}) {
		byIP, err := ratelimit.NewAddressBudget(limiter, lim, ratelimit.ByIP(clientip.New(cfg.access.trustedProxies...)), offersCredentials, log)
		if err != nil {
			return nil, err
		}
		mw = append(mw, byIP.Before, authenticate, byIP.Admitted)
	} else {
		mw = append(mw, authenticate)
	}
	if lim := cfg.access.perUser; lim != (ratelimit.Limit{}) {
		byUser, err := ratelimit.Middleware(limiter, lim, ratelimit.ByUser(), log)
		if err != nil {
			return nil, err
		}
		mw = append(mw, byUser)
	}
	return mw, nil
}

// offersCredentials says whether r offers a bearer token, or a live stream's ticket.
func offersCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has(ticket.Param)
}

// newTickets returns the tickets that open live streams: in Redis when the deployment has one,
// so that a ticket one read process issued opens a stream on another, else in this process.
// close releases them.
func newTickets(cfg config) (_ *ticket.Tickets, close func() error, err error) {
	if cfg.redisURL == "" {
		t, err := ticket.New(ticket.NewMemory(), 0)
		return t, func() error { return nil }, err
	}
	o, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("tickets in Redis: %w", err)
	}
	o.ContextTimeoutEnabled = true
	client := redis.NewClient(o)
	store, err := ticket.NewRedis(client, "")
	if err == nil {
		var t *ticket.Tickets
		if t, err = ticket.New(store, 0); err == nil {
			return t, client.Close, nil
		}
	}
	client.Close()
	return nil, nil, err
}

// streamAddress names a stream's client for EDUTRACK_LIVE_MAX_PER_ADDRESS as the address budget
// does: the address X-Forwarded-For names when a trusted proxy sent it, and an IPv6 /64 as one.
func streamAddress(cfg config) func(*http.Request) string {
	key := ratelimit.ByIP(clientip.New(cfg.access.trustedProxies...))
	return func(r *http.Request) string {
		k, _ := key(r)
		return k
	}
}

// deadline gives each request d to be answered in. The stores and waits a request runs honour
// its context, and a request past its deadline answers 503 (problem.From); the server's write
// timeout, a little longer, cuts off what does not.
func deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// disclosures is how the read API records disclosures in this process: through the command
// side when it can append to the log, not at all without authentication, and otherwise nil,
// which makes reads of other people's records answer 503.
func disclosures(cfg config, handler *commands.Handler, log *slog.Logger) readaccess.Disclosures {
	switch {
	case cfg.access.disabled:
		// Nobody is identified, so a record would name no one: every caller is the same admin.
		log.Warn("authentication is disabled: reads of learners' records are not recorded as disclosures")
		return unrecorded{}
	case handler == nil:
		log.Warn("this process cannot record disclosures: reads of a learner's records by anyone but the learner answer 503 here")
		return nil
	}
	return disclosureRecorder{handler}
}

// unrecorded records nothing.
type unrecorded struct{}

func (unrecorded) RecordDisclosure(context.Context, readaccess.Disclosure) error { return nil }

// disclosureRecorder records the read API's disclosures through the command side, in the
// reader's name: the event's acting user is whoever read.
type disclosureRecorder struct{ h *commands.Handler }

// maxRecordedHeader is the longest request or correlation id that the event keeps, as for
// commands; a longer one is replaced by the command's id.
const maxRecordedHeader = 128

func (d disclosureRecorder) RecordDisclosure(ctx context.Context, x readaccess.Disclosure) error {
	m := commands.Meta{CommandID: uuid.NewString(), RequestID: x.RequestID, CorrelationID: x.CorrelationID,
		Actor: x.Recipient}
	if m.RequestID == "" || len(m.RequestID) > maxRecordedHeader {
		m.RequestID = m.CommandID
	}
	if m.CorrelationID == "" || len(m.CorrelationID) > maxRecordedHeader {
		m.CorrelationID = m.RequestID
	}
	_, err := d.h.RecordDisclosure(ctx, m, commands.RecordDisclosure{LearnerID: x.LearnerID, Record: x.Record, Reason: x.Reason})
	return err
}
