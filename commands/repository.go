package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
)

// Store is what commands need of the event log.
type Store interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error)
}

// aggregate is what a repository needs of a domain aggregate.
type aggregate interface {
	Apply(domain.Event)
	Changes() []domain.Event
	ClearChanges()
}

// ErrRequestMismatch is returned for a command whose id was used before for another request (the
// same Idempotency-Key with another method, route or body): answering the first result would
// be a false success.
var ErrRequestMismatch = errors.New("commands: the command id was used for another request")

// errBusy is what a command answers when it kept losing races for its stream.
var errBusy = domain.Errorf(domain.Conflict, "the resource kept changing while this command ran; retry it")

// maxAttempts bounds how often a command re-loads and re-decides after losing a race.
const maxAttempts = 8

// rememberedCommands is how many recent commands per stream keep their results for retries.
const rememberedCommands = 1024

// repository keeps hot aggregates of one kind in memory. Before every use an aggregate catches
// up with its stream (reading only what follows its version, which costs nothing when the log
// knows there is nothing), so a cached aggregate is never older than the log, even when another
// process writes the same streams; the expected version on append settles any remaining race.
type repository[A aggregate] struct {
	prefix   string
	newAgg   func(id string) A
	store    Store
	codec    *eventstore.Codec
	capacity int

	mu      sync.Mutex
	entries map[string]*entry[A]
}

// entry is one cached aggregate; its mutex serialises the commands on its stream.
type entry[A aggregate] struct {
	mu       sync.Mutex
	agg      A
	version  uint64
	position uint64
	// results of the stream's recent commands by command id, so a retried command returns its
	// first answer instead of deciding again against the state it produced.
	results map[string]recorded
	order   []string
}

// recorded is what the stream holds of one command: its answer, and the id of its first event,
// which binds the request the command was made of (eventID).
type recorded struct {
	res   eventstore.AppendResult
	first uuid.UUID
}

func newRepository[A aggregate](prefix string, newAgg func(string) A, store Store, codec *eventstore.Codec, capacity int) *repository[A] {
	return &repository[A]{prefix: prefix, newAgg: newAgg, store: store, codec: codec, capacity: capacity,
		entries: make(map[string]*entry[A])}
}

func (r *repository[A]) stream(id string) string { return r.prefix + id }

// entry returns the cache entry for id, making room by dropping arbitrary others when full.
func (r *repository[A]) entry(id string) *entry[A] {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[id]; ok {
		return e
	}
	if len(r.entries) >= r.capacity {
		n := len(r.entries) / 8
		for k := range r.entries { // map order is random: a cheap random eviction
			delete(r.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	e := &entry[A]{agg: r.newAgg(id)}
	r.entries[id] = e
	return e
}

// reset forgets e's state, after a change that did not reach the log.
func (r *repository[A]) reset(id string, e *entry[A]) {
	e.agg, e.version, e.position, e.results, e.order = r.newAgg(id), 0, 0, nil, nil
}

// catchUp applies the events that follow e's version. The caller holds e.mu.
func (r *repository[A]) catchUp(ctx context.Context, id string, e *entry[A]) error {
	events, err := r.store.ReadStream(ctx, r.stream(id), e.version+1, 0)
	if err != nil {
		return fmt.Errorf("load %s: %w", r.stream(id), err)
	}
	for _, re := range events {
		ev, err := r.codec.Decode(re.Type, re.Data)
		if err != nil {
			r.reset(id, e)
			return fmt.Errorf("load %s at version %d: %w", r.stream(id), re.Version, err)
		}
		e.agg.Apply(ev)
		e.version, e.position = re.Version, re.Position
		if c := re.Metadata.CausationID; c != "" {
			e.remember(c, eventstore.AppendResult{Version: re.Version, Position: re.Position}, re.ID)
		}
	}
	return nil
}

// remember records that an event of command, with id, landed at res. The command's first event
// names its request; its last one is its answer.
func (e *entry[A]) remember(command string, res eventstore.AppendResult, id uuid.UUID) {
	if e.results == nil {
		e.results = make(map[string]recorded)
	}
	rec, ok := e.results[command]
	if !ok {
		e.order = append(e.order, command)
		if len(e.order) > rememberedCommands {
			delete(e.results, e.order[0])
			e.order = e.order[1:]
		}
		rec.first = id
	}
	rec.res = res
	e.results[command] = rec
}

// stateAt rebuilds aggregate id as it stood at version, for answering a retried command.
func (r *repository[A]) stateAt(ctx context.Context, id string, version uint64) (A, error) {
	agg := r.newAgg(id)
	events, err := r.store.ReadStream(ctx, r.stream(id), 1, int(version))
	if err != nil {
		return agg, fmt.Errorf("load %s at version %d: %w", r.stream(id), version, err)
	}
	for _, re := range events {
		ev, err := r.codec.Decode(re.Type, re.Data)
		if err != nil {
			return agg, fmt.Errorf("load %s at version %d: %w", r.stream(id), re.Version, err)
		}
		agg.Apply(ev)
	}
	agg.ClearChanges()
	return agg, nil
}

// view runs fn on the current state of aggregate id, without changing it.
func (r *repository[A]) view(ctx context.Context, id string, fn func(A) error) error {
	e := r.entry(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := r.catchUp(ctx, id, e); err != nil {
		return err
	}
	return fn(e.agg)
}

// change is what a command does to one aggregate.
type change[A aggregate] struct {
	// authorize, if not nil, checks that the sender may send the command to the aggregate as it
	// stands. It runs before decide, and before a retried command is answered, so a retry is
	// refused to a sender who may no longer send it.
	authorize func(A) error
	// decide records the command's events on the aggregate, or returns the rule it breaks.
	decide func(A) error
	// inspect, if not nil, sees the state the answer describes: after the append, or the state
	// a no-op or a retried command found.
	inspect func(A)
}

// update loads aggregate id, lets c decide and appends what it recorded with the version it was
// decided at. It retries on a lost race. changed is false when the command was a no-op; a
// retried command answers as it first did, or ErrRequestMismatch when its request differs.
func (r *repository[A]) update(ctx context.Context, id string, m Meta, c change[A]) (res eventstore.AppendResult, changed bool, err error) {
	if m.CommandID == "" {
		m.CommandID = uuid.NewString() // a command nobody will retry
	}
	for attempt := 1; ; attempt++ {
		res, changed, err = r.try(ctx, id, m, c)
		if !errors.Is(err, eventstore.ErrConcurrency) {
			return res, changed, err
		}
		if attempt == maxAttempts {
			return res, false, fmt.Errorf("%w (%w)", errBusy, err)
		}
	}
}

func (r *repository[A]) try(ctx context.Context, id string, m Meta, c change[A]) (eventstore.AppendResult, bool, error) {
	e := r.entry(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := r.catchUp(ctx, id, e); err != nil {
		return eventstore.AppendResult{}, false, err
	}
	if c.authorize != nil {
		if err := c.authorize(e.agg); err != nil {
			return eventstore.AppendResult{}, false, err
		}
	}
	if rec, ok := e.results[m.CommandID]; ok {
		if rec.first != eventID(m, 0) && rec.first != legacyEventID(m.CommandID, 0) {
			return eventstore.AppendResult{}, false, ErrRequestMismatch
		}
		if c.inspect != nil {
			// Answer as the first call did: from the state its last event left, not today's.
			then, err := r.stateAt(ctx, id, rec.res.Version)
			if err != nil {
				return eventstore.AppendResult{}, false, err
			}
			c.inspect(then)
		}
		return rec.res, true, nil
	}
	err := c.decide(e.agg)
	changes := e.agg.Changes()
	e.agg.ClearChanges()
	if err != nil {
		if len(changes) > 0 {
			r.reset(id, e) // a rule failed after recording: the state is not the log's
		}
		return eventstore.AppendResult{}, false, err
	}
	if len(changes) == 0 {
		if c.inspect != nil {
			c.inspect(e.agg)
		}
		return eventstore.AppendResult{Version: e.version, Position: e.position}, false, nil
	}
	data, err := r.encode(m, changes)
	if err != nil {
		r.reset(id, e)
		return eventstore.AppendResult{}, false, err
	}
	res, err := r.store.Append(ctx, r.stream(id), eventstore.Exact(e.version), data)
	if err != nil {
		r.reset(id, e)
		return eventstore.AppendResult{}, false, err
	}
	if res.Version != e.version+uint64(len(data)) {
		// The log already held these event ids: an earlier attempt of this command landed,
		// deciding on another state than ours. Its events, not our decision, are the truth, and
		// its answer is the one to give: reload, and let the retry path answer.
		r.reset(id, e)
		return eventstore.AppendResult{}, false, fmt.Errorf("command %s landed before: %w", m.CommandID, eventstore.ErrConcurrency)
	}
	e.version, e.position = res.Version, res.Position
	e.remember(m.CommandID, res, data[0].ID)
	if c.inspect != nil {
		c.inspect(e.agg)
	}
	return res, true, nil
}

// eventNamespace derives event ids from command ids: the same command always appends the same
// event ids, so the log recognises a retry.
var eventNamespace = uuid.MustParse("6f1c2a4e-8a43-4d0b-9b7e-2f5d1c3a9e10")

// eventID is the id of the i-th event of the command m. It binds the request too, when the
// transport names it (Meta.Request): a retry of the same command id with another request makes
// other event ids, which the stream tells apart from the first ones.
func eventID(m Meta, i int) uuid.UUID {
	if m.Request == "" {
		return legacyEventID(m.CommandID, i)
	}
	return uuid.NewSHA1(eventNamespace, fmt.Appendf(nil, "%s/%s/%d", m.CommandID, m.Request, i))
}

// legacyEventID is the id of the i-th event of a command that names no request, as every event
// was derived before requests were bound: a retry of such a command is answered as before.
func legacyEventID(commandID string, i int) uuid.UUID {
	return uuid.NewSHA1(eventNamespace, fmt.Appendf(nil, "%s/%d", commandID, i))
}

func (r *repository[A]) encode(m Meta, changes []domain.Event) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, len(changes))
	for i, ev := range changes {
		typ, data, err := r.codec.Encode(ev)
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.EventData{
			ID:   eventID(m, i),
			Type: typ,
			Data: data,
			Metadata: eventstore.Metadata{
				CorrelationID: m.CorrelationID,
				CausationID:   m.CommandID,
				UserID:        m.Actor.UserID,
				RequestID:     m.RequestID,
			},
		}
	}
	return out, nil
}
