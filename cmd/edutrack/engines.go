package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/kurrent"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/cache/rediscache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/changes/redischanges"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/mongostore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

// engines are the stores one process keeps its data in, as its configuration and roles choose
// them, and the readiness check of each.
type engines struct {
	// events is nil in a read process that has no embedded log to follow.
	events eventstore.Store
	reads  readstore.Store
	docs   cache.Cache
	checks map[string]func(context.Context) error
	// nonCritical are the dependencies the process serves without, only slower: failing, they
	// leave it ready (degraded).
	nonCritical map[string]func(context.Context) error
	// integrity is the embedded log's verdict at open (nil: it passed); nil on KurrentDB, and
	// where no log is followed.
	integrity func() error
	// closers close what was opened, in the order it was opened.
	closers []func() error
}

// openEngines opens the event log, the read store and the cache. On an error it closes what it
// had opened.
func openEngines(ctx context.Context, cfg config, log *slog.Logger, reg prometheus.Registerer) (_ *engines, err error) {
	e := &engines{checks: map[string]func(context.Context) error{}, nonCritical: map[string]func(context.Context) error{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.events, e.integrity, err = openEventLog(ctx, cfg, log); err != nil {
		return nil, err
	}
	if e.events != nil {
		e.closers = append(e.closers, e.events.Close)
		e.checks["event_log"] = func(ctx context.Context) error { _, err := e.events.Head(ctx); return err }
	}
	if e.integrity != nil {
		// Degraded, not unready: every process shares the log, so failing readiness would take
		// them all out of the load balancer at once, for what withholds the history alone. The
		// alert EduTrackLogFailedVerification pages on edutrack_event_log_verified.
		e.nonCritical["event_log_integrity"] = func(context.Context) error { return e.integrity() }
		verified := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "event_log", Name: "verified",
			Help: "1 when the embedded log passed its check against its anchors at open, 0 when it failed (history is withheld)."},
			func() float64 { return map[bool]float64{true: 1, false: 0}[e.integrity() == nil] })
		if err := reg.Register(verified); err != nil {
			return nil, err
		}
		if err := e.integrity(); err != nil {
			log.Error("the event log failed verification: its history is not served until an operator has looked into it", "err", err,
				"run", "edutrack audit verify --data-dir "+cfg.dataDir)
		}
	}
	if err = e.openReadStore(ctx, cfg); err != nil {
		return nil, err
	}
	if err = e.openCache(cfg, log, reg); err != nil {
		return nil, err
	}
	return e, nil
}

// close closes the stores, the last opened first.
func (e *engines) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// openEventLog opens KurrentDB when cfg names it, else the embedded log. The embedded log admits
// one process at a time, so a process without the write role does not open it (reads come from
// the read models, and learner histories are then served by the process that holds the log);
// KurrentDB serves any number of processes. It is nil in a read process with no log to follow.
// The embedded log is checked as it opens, writer and followers alike, since both serve history:
// integrity gives the verdict. KurrentDB's log is not anchored.
func openEventLog(ctx context.Context, cfg config, log *slog.Logger) (_ eventstore.Store, integrity func() error, _ error) {
	if cfg.esdbURL != "" {
		ks, err := kurrent.Open(ctx, cfg.esdbURL, kurrent.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("open the KurrentDB event log: %w", err)
		}
		return ks, nil, nil
	}
	key, err := anchorKey(cfg.anchors, log)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(cfg.dataDir, "events.db")
	if cfg.roles.write {
		sl, err := sqlitelog.Open(path, sqlitelog.Options{Anchors: sqlitelog.AnchorOptions{Key: key, Every: cfg.anchors.every, Anchored: logAnchor(log)}})
		if err != nil {
			return nil, nil, err
		}
		return sl, sl.Integrity, nil
	}
	// Beside a write process on this machine: follow the file it writes. A read process can do
	// without it (it then serves no learner histories); a projector, a reactor and a job worker
	// cannot.
	fl, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{AnchorKey: key})
	switch {
	case err == nil:
		return fl, fl.Integrity, nil
	case cfg.roles.project, cfg.roles.react, cfg.roles.work:
		return nil, nil, err
	}
	log.Warn("no event log to follow: learner histories are not served here", "err", err)
	return nil, nil, nil
}

// openReadStore opens MongoDB when cfg names it, else the embedded read store.
func (e *engines) openReadStore(ctx context.Context, cfg config) error {
	if cfg.mongoURI != "" {
		ms, err := mongostore.Open(ctx, cfg.mongoURI, mongostore.Options{})
		if err != nil {
			return fmt.Errorf("open the MongoDB read store: %w", err)
		}
		e.reads, e.checks["read_store"] = ms, ms.Ping
	} else {
		ss, err := sqlitestore.Open(filepath.Join(cfg.dataDir, "read.db"))
		if err != nil {
			return err
		}
		e.reads = ss
		e.checks["read_store"] = func(ctx context.Context) error { _, err := ss.Checkpoint(ctx, documents.CoursesProjection); return err }
	}
	e.closers = append(e.closers, e.reads.Close)
	return nil
}

// openCache opens Redis when cfg names it, else a cache in this process, or none.
func (e *engines) openCache(cfg config, log *slog.Logger, reg prometheus.Registerer) error {
	switch {
	case cfg.redisURL != "":
		rc, err := rediscache.Open(cfg.redisURL, rediscache.Options{Prefix: "edutrack:", Registerer: reg, Logger: log})
		if err != nil {
			return fmt.Errorf("open the Redis cache: %w", err)
		}
		e.closers = append(e.closers, rc.Close)
		// Redis being down degrades reads to the store: /readyz says so, and stays 200.
		e.docs, e.nonCritical["cache"] = rc, rc.Ping
	case cfg.roles.project:
		e.docs = cache.NewMemory(cfg.cacheEntries)
	default:
		// Nothing would tell an in-process cache of a read process without projections that a
		// document changed, so such a process reads the store every time.
		e.docs = cache.Nop{}
	}
	return nil
}

// openChanges opens the change feed: Redis pub/sub when cfg names Redis, so that every read
// process hears of the projector's commits, else the feed of this process alone (a read process
// without Redis and without the project role then hears of none). closeFeed releases it.
func openChanges(cfg config, log *slog.Logger, reg prometheus.Registerer) (_ changes.Feed, closeFeed func() error, _ error) {
	if cfg.redisURL == "" {
		return changes.NewMemory(0), func() error { return nil }, nil
	}
	rf, err := redischanges.Open(cfg.redisURL, redischanges.Options{Prefix: "edutrack:", Registerer: reg, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("open the Redis change feed: %w", err)
	}
	return rf, rf.Close, nil
}
