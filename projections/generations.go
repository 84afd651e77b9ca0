package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

// A projection's read models are built in generations. The live generation serves reads; a
// rebuild, or a new code version of the projector, builds the next generation beside it from
// position 0, in collections of its own, and when it has caught up the projection's registration
// names it live in one write. The old generation is then dropped. Generation 1 keeps the plain
// collection and checkpoint names, so stores written before generations existed are generation 1.

// registryColl holds one registration per projection, in the read store beside the read models
// it describes, so every process that reads them finds which generation to read.
const registryColl = "_projections"

// Generation is one build of a projection's read models.
type Generation struct {
	N       int `json:"n"`       // counts the projection's generations from 1
	Version int `json:"version"` // the projector's code version that builds it
}

// key names the generation's checkpoint and dead letters.
func (g Generation) key(projection string) string { return g.name(projection) }

// name is the stored name of a collection in this generation.
func (g Generation) name(coll string) string {
	if g.N <= 1 {
		return coll
	}
	return fmt.Sprintf("%s_g%d", coll, g.N)
}

// Skip records an operator's decision to pass over an event a projection could not apply.
// Skips hold for every generation built by the same code version, since that code would fail
// on the event again.
type Skip struct {
	Version   int       `json:"version"`
	Position  uint64    `json:"position"`
	EventID   string    `json:"eventId"`
	EventType string    `json:"eventType"`
	Error     string    `json:"error"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// registration is what the read store records of one projection.
type registration struct {
	rev     uint64       // bumped by each write; the store's position guard orders them
	Live    Generation   `json:"live"`
	Build   *Generation  `json:"build,omitempty"`
	Retired []Generation `json:"retired,omitempty"` // replaced, and not dropped yet
	Last    int          `json:"last"`              // the highest generation number used
	Skips   []Skip       `json:"skips,omitempty"`
}

func (r registration) clone() registration {
	c := r
	if r.Build != nil {
		b := *r.Build
		c.Build = &b
	}
	c.Retired = slices.Clone(r.Retired)
	c.Skips = slices.Clone(r.Skips)
	return c
}

func loadRegistrations(ctx context.Context, store readstore.Store, names []string) (map[string]registration, error) {
	docs, err := store.GetMany(ctx, registryColl, names)
	if err != nil {
		return nil, fmt.Errorf("read projection registrations: %w", err)
	}
	out := make(map[string]registration, len(docs))
	for _, d := range docs {
		var reg registration
		if err := json.Unmarshal(d.Body, &reg); err != nil {
			return nil, fmt.Errorf("read the registration of projection %s: %w", d.ID, err)
		}
		reg.rev = d.Position
		out[d.ID] = reg
	}
	return out, nil
}

// saveRegistration writes reg, and with it (before it, where the store cannot make them one
// transaction) the writes with.
func saveRegistration(ctx context.Context, store readstore.Store, name string, reg *registration, with ...readstore.Write) error {
	body, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	next := reg.rev + 1
	w := readstore.Write{Coll: registryColl, Doc: readstore.Doc{ID: name, Position: next, Body: body}}
	if err := store.Commit(ctx, registryColl+"_"+name, next, append(with[:len(with):len(with)], w)); err != nil {
		return fmt.Errorf("record the registration of projection %s: %w", name, err)
	}
	reg.rev = next
	return nil
}

// Live is the read models as the read API sees them: each collection read from its
// projection's live generation, which it follows as generations change.
type Live struct {
	store readstore.Store
	owner map[string]string // collection -> the projection that writes it

	mu   sync.RWMutex
	gens map[string]Generation // projection -> its live generation

	// followed is the generation of each projection whose checkpoint follow last read; only
	// Follow's goroutine uses it.
	followed map[string]Generation
}

// NewLive returns the live view of store's read models, written by projectors.
func NewLive(store readstore.Store, projectors ...Projector) *Live {
	l := &Live{store: store, owner: map[string]string{}, gens: map[string]Generation{}, followed: map[string]Generation{}}
	for _, p := range projectors {
		for _, c := range p.ReadModels() {
			l.owner[c] = p.Name()
		}
		l.gens[p.Name()] = Generation{N: 1, Version: p.Version()}
	}
	return l
}

func (l *Live) set(projection string, g Generation) {
	l.mu.Lock()
	l.gens[projection] = g
	l.mu.Unlock()
}

// Generation returns projection's live generation.
func (l *Live) Generation(projection string) Generation {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.gens[projection]
}

// Coll is the stored name of collection coll in its live generation.
func (l *Live) Coll(coll string) string {
	p, ok := l.owner[coll]
	if !ok {
		return coll
	}
	return l.Generation(p).name(coll)
}

// CacheKey is the cache key of document id of collection coll in its live generation; each
// generation has its own keys, so a new one never meets the old one's entries.
func (l *Live) CacheKey(coll, id string) string { return CacheKey(l.Coll(coll), id) }

// Get reads a document of the live generation.
func (l *Live) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	return l.store.Get(ctx, l.Coll(coll), id)
}

// GetMany reads documents of the live generation.
func (l *Live) GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error) {
	return l.store.GetMany(ctx, l.Coll(coll), ids)
}

// Find queries the live generation.
func (l *Live) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	q.Coll = l.Coll(q.Coll)
	return l.store.Find(ctx, q)
}

// Refresh reads which generations are live from the store.
func (l *Live) Refresh(ctx context.Context) error { return l.refresh(ctx, nil) }

// refresh reads which generations are live. With positions, it raises the cache fence of a
// generation that went live before it reads through it: its fence was written with (or before)
// the registration that names it, and entries in its keys from before it are not to be trusted.
func (l *Live) refresh(ctx context.Context, positions *Positions) error {
	l.mu.RLock()
	names := make([]string, 0, len(l.gens))
	for n := range l.gens {
		names = append(names, n)
	}
	l.mu.RUnlock()
	regs, err := loadRegistrations(ctx, l.store, names)
	if err != nil {
		return err
	}
	if positions != nil {
		var switched []string
		for name, reg := range regs {
			if reg.Live != l.Generation(name) {
				switched = append(switched, reg.Live.key(name))
			}
		}
		if len(switched) > 0 {
			fences, err := loadFences(ctx, l.store, switched)
			if err != nil {
				return err
			}
			for name, reg := range regs {
				if reg.Live != l.Generation(name) {
					positions.RaiseCacheFence(name, fences[reg.Live.key(name)])
				}
			}
		}
	}
	for name, reg := range regs {
		l.set(name, reg.Live)
	}
	return nil
}

// Follow keeps l and positions current with the read store, for a read process whose projections
// run in another process: it reads the registrations, and the live generations' checkpoints and
// cache fences, every interval until ctx ends. A generation that stops being live is dropped only
// after a grace period (Options.DropGrace), far longer than interval, so reads here never meet a
// dropped one.
func (l *Live) Follow(ctx context.Context, positions *Positions, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := l.refresh(ctx, positions); err == nil {
			l.follow(ctx, positions)
		} else if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// follow reads the live generations' checkpoints, then their cache fences, and advances
// positions. The fences come second: a fence is committed with the checkpoint of its batch (or,
// on MongoDB, before it), so the fence read after a checkpoint is at least the one that went with
// it, and each is raised before its position advances.
func (l *Live) follow(ctx context.Context, positions *Positions) {
	l.mu.RLock()
	gens := make(map[string]Generation, len(l.gens))
	for n, g := range l.gens {
		gens[n] = g
	}
	l.mu.RUnlock()
	cps := make(map[string]uint64, len(gens))
	keys := make([]string, 0, len(gens))
	for name, g := range gens {
		if cp, err := l.store.Checkpoint(ctx, g.key(name)); err == nil {
			cps[name] = cp
			keys = append(keys, g.key(name))
		}
	}
	if len(keys) == 0 {
		return
	}
	fences, err := loadFences(ctx, l.store, keys)
	if err != nil {
		return
	}
	for name, cp := range cps {
		positions.RaiseCacheFence(name, fences[gens[name].key(name)])
		if gens[name] != l.followed[name] {
			// Another generation went live: its checkpoint is the position now, even below the
			// last one's (a generation rebuilt after the log went back).
			positions.Set(name, cp)
			l.followed[name] = gens[name]
			continue
		}
		positions.Advance(name, cp)
	}
}

// Errors of the projection operations.
var (
	ErrUnknownProjection = errors.New("no such projection")
	ErrRebuilding        = errors.New("the projection is already being rebuilt")
	ErrNotStalled        = errors.New("the projection is not stalled")
	ErrNotRunning        = errors.New("the projections are not running")
)
