package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/measured"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/internal/compress"
	"github.com/edutrack/edutrack/internal/modulefiles"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/opsapi"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/metered"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/graphql"
	"github.com/edutrack/edutrack/readapi/history"
	streams "github.com/edutrack/edutrack/readapi/live"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// process is one process of EduTrack as serve assembles it: its engines, the routes its roles
// add, the workers they run beside the HTTP server, and what they need closed once that server
// has stopped.
type process struct {
	cfg config
	log *slog.Logger
	reg prometheus.Registerer
	// events is nil in a read process that has no embedded log to follow.
	events eventstore.Store
	// integrity is the embedded log's verdict at open, nil on KurrentDB.
	integrity func() error
	reads     readstore.Store
	docs      cache.Cache
	router    chi.Router // open to anyone
	v1        chi.Router // behind the authenticator and the request budgets
	public    chi.Router // /v1 routes that take no token: behind the budget of the address
	authn     *auth.Authenticator
	// readiness is served at /readyz once the roles have added to it.
	readiness  observe.Readiness
	positions  *projections.Positions
	projectors []projections.Projector
	changes    changes.Feed // nil until a role asks for it: see changeFeed
	// tickets open live streams, and streams is the router of their route: behind the budgets
	// and an authenticator that takes tickets, with no deadline. Both are nil without the read
	// role.
	tickets *ticket.Tickets
	streams chi.Router
	workers []func(context.Context) error
	closers []func() error
	handler *commands.Handler // see commandHandler
	bucket  *blob.Bucket      // see blobBucket
	// signer signs the links of a file:// bucket, nil on S3; signed is the router of the route
	// they lead to, behind the budget of the address. files keeps the module files.
	signer *fileblob.URLSignerHMAC
	signed chi.Router
	files  *modulefiles.Store
	// keys bind Idempotency-Keys and images take course images, for the write API and the
	// GraphQL mutations alike; both are nil without the write role.
	keys   *writeapi.Keys
	images *writeapi.Images
}

// changeFeed is the change feed of this process, opened at the first call: the projector
// publishes its commits on it, and the read API's live streams subscribe to it. Every role of
// the process shares it, which the in-process feed needs. It closes with the process, after the
// closers registered before the first call.
func (p *process) changeFeed() (changes.Feed, error) {
	if p.changes != nil {
		return p.changes, nil
	}
	feed, closeFeed, err := openChanges(p.cfg, p.log, p.reg)
	if err != nil {
		return nil, err
	}
	p.changes = feed
	p.closers = append(p.closers, closeFeed)
	return feed, nil
}

// commandHandler is the command side. It serves the write API, and records the read API's
// disclosures in any process that can append to the log: the writer of the embedded log, or any
// on KurrentDB (a follower of the embedded log only reads it). Elsewhere it is nil.
// The certificate workers send their commands through it too. Every role of the process
// shares the one handler, made at the first call.
func (p *process) commandHandler() (*commands.Handler, error) {
	canAppend := p.cfg.roles.write || p.cfg.esdbURL != ""
	if needed := p.cfg.roles.write || p.cfg.roles.read || p.cfg.roles.work; !canAppend || !needed {
		return nil, nil
	}
	if p.handler != nil {
		return p.handler, nil
	}
	// The command side's appends are measured: their latency and their errors by reason.
	store, err := measured.New(p.events, p.reg)
	if err != nil {
		return nil, err
	}
	opts := commands.Options{}
	if p.files != nil {
		opts.Files, opts.FileLimits = p.files, p.cfg.files.limits
	}
	p.handler, err = commands.New(store, time.Now, opts)
	return p.handler, err
}

// write is the write role: the write API.
func (p *process) write(handler *commands.Handler) error {
	writeAPI, err := writeapi.New(handler, p.log)
	if err != nil {
		return err
	}
	writeAPI.Routes(p.v1)
	p.keys = writeAPI.Keys()
	return nil
}

// project is the project role: the projections, with their admin API, and their state in the
// readiness report. It returns the live generations of the read models it builds.
func (p *process) project() (*projections.Live, error) {
	codec, err := commands.NewCodec()
	if err != nil {
		return nil, err
	}
	// Registered before the change feed opens, and so run before it closes: the runner's last
	// batch is still announced.
	var runner *projections.Runner
	p.closers = append(p.closers, func() error {
		if runner == nil {
			return nil
		}
		return runner.Close()
	})
	feed, err := p.changeFeed()
	if err != nil {
		return nil, err
	}
	runner, err = projections.NewRunner(p.events, codec, p.reads, p.docs, p.positions, p.reg, p.log, projections.Options{Changes: feed}, p.projectors...)
	if err != nil {
		return nil, err
	}
	live := runner.Live()
	// One process at a time projects: a second one waits for the lease, following the read
	// models meanwhile, and takes over when the first stops or dies.
	owner := leaseOwner()
	held := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection", Name: "lease_held",
		Help: "1 while this process holds the projector lease and projects, 0 while it waits; owner names the process."},
		[]string{"owner"})
	if err := p.reg.Register(held); err != nil {
		return nil, err
	}
	holding := held.WithLabelValues(owner)
	p.workers = append(p.workers, func(ctx context.Context) error {
		freeDeadHolder(ctx, p.reads, "projector", p.log)
		return projections.HoldLease(ctx, p.reads, "projector", owner, p.cfg.leaseTTL, p.log,
			func(ctx context.Context) error { return live.Follow(ctx, p.positions, 20*time.Millisecond) },
			func(ctx context.Context) error {
				holding.Set(1)
				defer holding.Set(0)
				return runner.Run(ctx)
			})
	})
	opsapi.Routes(p.v1.With(auth.Restrict(p.log, domain.Admin)), runner, p.log)
	p.readiness.Projections = func(ctx context.Context) map[string]observe.ProjectionState {
		head, _ := p.events.Head(ctx)
		out := map[string]observe.ProjectionState{}
		for name, status := range runner.Status() {
			pos := p.positions.Position(name)
			out[name] = observe.ProjectionState{Position: pos, Head: head, Lag: head - min(head, pos), Status: status}
		}
		return out
	}
	return live, nil
}

// read is the read role: the read API, and the learner histories where this process has the
// event log. live is the projections' of this process, or nil when another process projects.
func (p *process) read(ctx context.Context, live *projections.Live, handler *commands.Handler) error {
	if live == nil {
		// Follow the projecting process's registrations and checkpoints, so this process reads
		// the live generation of each read model and minPosition waits work here too.
		live = projections.NewLive(p.reads, p.projectors...)
		if err := live.Refresh(ctx); err != nil {
			return err
		}
		p.workers = append(p.workers, func(ctx context.Context) error { return live.Follow(ctx, p.positions, 20*time.Millisecond) })
	}
	recorder := disclosures(p.cfg, handler, p.log)
	waits, err := readhttp.NewWaitMetrics(p.reg)
	if err != nil {
		return err
	}
	bucket, err := p.blobBucket(ctx)
	if err != nil {
		return err
	}
	// Every read of the read store is counted by read model and operation, so the batching of
	// the GraphQL loaders (and a REST screen's many reads) shows in the metrics.
	reads, err := metered.New(live, p.reg)
	if err != nil {
		return err
	}
	opts := readapi.Options{ConsistencyWait: p.cfg.consistencyWait, CatalogMaxAge: p.cfg.catalogMaxAge, Waits: waits, CacheKey: live.CacheKey, Disclosures: recorder,
		Blobs: bucket, MediaBaseURL: p.cfg.media.baseURL}
	if p.files != nil {
		opts.Files = p.files
	}
	readAPI, err := readapi.New(reads, p.docs, p.positions, p.reg, p.log, opts)
	if err != nil {
		return err
	}
	var historyAPI *history.API
	if p.events != nil {
		historyAPI, err = history.New(p.events, reads, p.positions, p.log, history.Options{ConsistencyWait: p.cfg.consistencyWait, Waits: waits,
			XAPIHomePage: p.cfg.xapiHomePage, Disclosures: recorder})
		if err != nil {
			return err
		}
	}
	feed, err := p.changeFeed()
	if err != nil {
		return err
	}
	hub, err := streams.NewHub(feed, reads, p.docs, p.positions, p.reg, p.log, streams.Options{CacheKey: live.CacheKey,
		Disclosures: recorder, ConsistencyWait: p.cfg.consistencyWait, Waits: waits, MaxTopics: p.cfg.access.live.maxTopics, MaxPerUser: p.cfg.access.live.maxPerUser,
		MaxPerAddress: p.cfg.access.live.maxPerAddress, Buffer: p.cfg.access.live.buffer, Address: streamAddress(p.cfg),
		MediaBaseURL: p.cfg.media.baseURL})
	if err != nil {
		return err
	}
	// Its streams end when it does: the server's shutdown then waits on none of them.
	p.workers = append(p.workers, hub.Run)
	hub.Routes(p.streams, p.v1, p.tickets)
	gqlOpts := graphql.Options{Disclosures: recorder, History: historyAPI, Introspection: p.cfg.graphqlIntrospection,
		Feed: feed, Authenticate: p.authn.Actor, SharedMaxAge: p.cfg.catalogMaxAge}
	if handler != nil && p.cfg.roles.write {
		gqlOpts.Commands = graphqlCommands{h: handler, keys: p.keys, images: p.images}
		gqlOpts.MaxUploadBytes = p.cfg.media.imageMaxBytes
	}
	gql, err := graphql.New(readAPI, p.reg, p.log, gqlOpts)
	if err != nil {
		return err
	}
	p.router.Get("/openapi.json", readapi.ServeOpenAPI)
	p.router.Get("/graphql/schema.graphql", graphql.ServeSchema)
	gql.WebSocketRoutes(p.router)
	// A gzip answer has its own ETag: clients revalidate either representation with its own tag.
	gzip, err := compress.Middleware(compressMinSize)
	if err != nil {
		return err
	}
	p.public.With(gzip).Group(readAPI.PublicRoutes)
	// Images are compressed already, and a Range counts the bytes as stored.
	p.public.Group(readAPI.MediaRoutes)
	p.v1.Group(func(r chi.Router) {
		r.Use(gzip)
		readAPI.Routes(r)
		gql.Routes(r)
		if historyAPI != nil {
			r.Group(func(r chi.Router) {
				if p.integrity != nil {
					r.Use(verifiedHistory(p.integrity, p.log))
				}
				historyAPI.Routes(r)
			})
		}
	})
	return nil
}

// compressMinSize is 0: every JSON answer is gzipped for a client that accepts gzip, so the tag
// of a 304 follows from the request alone (internal/compress). The read models' documents are
// rarely so small that it costs more than it saves.
const compressMinSize = 0

// verifiedHistory answers 503 instead of a history read from a log that failed its check at
// open: what it would serve may be forged. It stands after the authenticator, so that no
// anonymous caller learns of it, and before the handler, so that nothing is read or disclosed.
func verifiedHistory(integrity func() error, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if integrity() != nil {
				problem.Write(w, r, log, problem.New(http.StatusServiceUnavailable, "",
					"the event log failed verification when this process started, so its history is not served until an operator has looked into it"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// leaseOwner names this process in the projector lease.
func leaseOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

// freeDeadHolder releases the projector lease when its holder was a process of this machine
// that no longer runs, as after a crash of the one process of the embedded default: the restart
// then projects at once instead of waiting out the lease. The fencing token still moves on, so
// nothing the dead holder left in flight can land. A holder elsewhere, or alive, is left alone.
func freeDeadHolder(ctx context.Context, store readstore.Store, name string, log *slog.Logger) {
	l, err := store.AcquireLease(ctx, name, "probe/"+uuid.NewString(), time.Nanosecond)
	if err == nil {
		// Nobody held it; the probe's lease has expired already, so this changes nothing.
		return
	}
	if !errors.Is(err, readstore.ErrLeaseHeld) || !goneLocalProcess(l.Owner) {
		return
	}
	if err := store.ReleaseLease(ctx, name, l.Owner); err == nil {
		log.Info("released the projector lease of a process of this machine that no longer runs", "holder", l.Owner)
	}
}

// goneLocalProcess tells whether a lease owner (as leaseOwner names it) was a process of this
// machine that no longer runs. A holder elsewhere, alive, or this process is never gone.
func goneLocalProcess(owner string) bool {
	host, _ := os.Hostname()
	parts := strings.Split(owner, "/")
	if len(parts) != 3 || parts[0] != host {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	return err == nil && pid > 0 && pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
