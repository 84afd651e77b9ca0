// Package history serves what auditors read of the event log itself: a learner's events in
// order, their state as recorded at any instant (asOf, replayed through the domain code), the
// same history as xAPI statements, and the disclosures of their records. Nothing here reads a
// read model's copy of the past, so it is exactly what was recorded.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// Log is what the history needs of the event store: a learner's history is read from the log
// itself, not from a read model, so it is exactly what was recorded.
type Log interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error)
}

// HistoryEvent is one recorded event of a learner, as an auditor reads it.
type HistoryEvent struct {
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schemaVersion"`
	StreamVersion uint64          `json:"streamVersion"`
	Position      uint64          `json:"position"`
	RecordedAt    time.Time       `json:"recordedAt"`
	Data          json.RawMessage `json:"data"`
	CorrelationID string          `json:"correlationId"`
	CausationID   string          `json:"causationId"`
	// RequestID is the X-Request-Id of the request that sent the command, as its access line
	// in the server's log names it.
	RequestID  string `json:"requestId"`
	ActingUser string `json:"actingUser"`
}

// Learners tells whether a learner is registered: registration creates the learner's
// dashboard, so the read model knows it.
type Learners interface {
	Get(ctx context.Context, coll, id string) (readstore.Doc, error)
}

// Options tune the API.
type Options struct {
	// ConsistencyWait bounds how long a read waits for minPosition (default 3s).
	ConsistencyWait time.Duration
	// Waits, if not nil, measures the reads' waits for their minPosition.
	Waits *readhttp.WaitMetrics
	// XAPIHomePage is the homePage of learners' accounts in xAPI statements, and the base of
	// activity ids (default "https://edutrack.invalid": set it to the school's address).
	XAPIHomePage string
	// Disclosures records reads of a learner's records by someone else. Without it such reads
	// answer 503: the records may only be disclosed once the disclosure is recorded.
	Disclosures access.Disclosures
}

// API serves the history routes.
type API struct {
	log         Log
	learners    Learners
	consistency readhttp.Consistency
	logger      *slog.Logger
	opts        Options
	streams     *replayCache
	based       *basedCache
}

// New returns the history API over the event log.
func New(log Log, learners Learners, positions readhttp.Positions, logger *slog.Logger, opts Options) (*API, error) {
	if log == nil || learners == nil || positions == nil || logger == nil {
		return nil, errors.New("history: every dependency is required")
	}
	if opts.ConsistencyWait <= 0 {
		opts.ConsistencyWait = 3 * time.Second
	}
	if opts.XAPIHomePage == "" {
		opts.XAPIHomePage = "https://edutrack.invalid"
	}
	codec, err := eventstore.NewCodec(slices.Concat(user.Events(), course.Events(), learner.Events())...)
	if err != nil {
		return nil, err
	}
	return &API{log: log, learners: learners, logger: logger, opts: opts,
		consistency: readhttp.Consistency{Positions: positions, Wait: opts.ConsistencyWait, Waits: opts.Waits},
		streams:     &replayCache{log: log, codec: codec, max: 200_000, entries: map[string]*replayed{}},
		based:       &basedCache{max: 2_000, entries: map[string]*based{}}}, nil
}

// Routes mounts the learner history on r, behind an authenticator that puts the caller in each
// request's context. Only a process that has the event log serves it.
func (a *API) Routes(r chi.Router) {
	records := r.With(auth.Restrict(a.logger, access.LearnerRecords...))
	records.Get("/v1/learners/{id}/history", readhttp.Handler(a.logger, func(r *http.Request) (readhttp.Reply, error) {
		serve, what := a.history, learner.RecordHistory
		switch f := r.URL.Query().Get("format"); {
		case r.URL.Query().Has("asOf"):
			serve, what = a.asOf, learner.RecordStateAsOf
		case f == "xapi":
			serve, what = a.xapi, learner.RecordXAPI
		case f != "":
			return readhttp.Reply{}, problem.New(http.StatusBadRequest, "format", "must be xapi, or absent")
		}
		read, err := access.ReadLearner(r, chi.URLParam(r, "id"), what, a.opts.Disclosures)
		if err != nil {
			return readhttp.Reply{}, err
		}
		rep, err := serve(r)
		if err != nil {
			return readhttp.Reply{}, err
		}
		return rep, read.Disclose(r.Context())
	}))
	records.Get("/v1/learners/{id}/disclosures", readhttp.Handler(a.logger, a.disclosures))
}

// replayCache keeps decoded streams for asOf, so an auditor stepping through dates, and every
// learner of a course, do not read and decode the same events again. Streams only grow, so an
// entry is brought up to date by reading what follows its version.
type replayCache struct {
	log   Log
	codec *eventstore.Codec
	max   int // events kept in all

	mu      sync.Mutex
	entries map[string]*replayed
	total   int
}

type replayed struct {
	mu      sync.Mutex
	version uint64
	events  []replayedEvent
}

type replayedEvent struct {
	id       uuid.UUID
	version  uint64
	at       time.Time
	position uint64
	event    domain.Event
}

// progressID derives the id of the progressed statement that accompanies a module completion.
func progressID(eventID uuid.UUID) string {
	return uuid.NewSHA1(eventID, []byte("progressed")).String()
}

// knownLearner answers 404 for an id that is no registered learner: registration creates the
// dashboard.
func (a *API) knownLearner(ctx context.Context, id string) error {
	if _, err := a.learners.Get(ctx, documents.Dashboards, id); errors.Is(err, readstore.ErrNotFound) {
		return readhttp.NotFound("learner")
	} else if err != nil {
		return err
	}
	return nil
}

// has reports whether stream's events are decoded here already.
func (c *replayCache) has(stream string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[stream]
	return ok
}

// upTo returns the events of stream recorded up to asOf, decoded.
func (c *replayCache) upTo(ctx context.Context, stream string, asOf time.Time) ([]replayedEvent, error) {
	c.mu.Lock()
	e, ok := c.entries[stream]
	if !ok {
		if c.total > c.max {
			for k, old := range c.entries { // random eviction: map order is random
				c.total -= len(old.events)
				delete(c.entries, k)
				if c.total <= c.max/2 {
					break
				}
			}
		}
		e = &replayed{}
		c.entries[stream] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	recorded, err := c.log.ReadStream(ctx, stream, e.version+1, 0)
	if err != nil {
		return nil, err
	}
	for _, re := range recorded {
		ev, err := c.codec.Decode(re.Type, re.Data)
		if err != nil {
			return nil, fmt.Errorf("replay %s at version %d: %w", stream, re.Version, err)
		}
		e.events = append(e.events, replayedEvent{id: re.ID, version: re.Version, at: re.RecordedAt, position: re.Position, event: ev})
		e.version = re.Version
	}
	c.mu.Lock()
	c.total += len(recorded)
	c.mu.Unlock()
	n := sort.Search(len(e.events), func(i int) bool { return e.events[i].at.After(asOf) })
	return e.events[:n:n], nil
}

// StateAsOf is a learner's state as the system had recorded it at one instant.
type StateAsOf struct {
	LearnerID   string           `json:"learnerId"`
	AsOf        time.Time        `json:"asOf"`
	Position    uint64           `json:"position"` // of the last event recorded by then; 0 if none
	Enrollments []EnrollmentAsOf `json:"enrollments"`
}

// EnrollmentAsOf is one enrollment at that instant; progress counts the course's modules as they
// stood then.
type EnrollmentAsOf struct {
	CourseID         string     `json:"courseId"`
	Status           string     `json:"status"`
	Progress         float64    `json:"progress"`
	CompletedModules []string   `json:"completedModules"`
	ModuleCount      int        `json:"moduleCount"`
	EnrolledAt       time.Time  `json:"enrolledAt"`
	CompletedAt      *time.Time `json:"completedAt"`
}

// replay applies the events of stream recorded up to asOf to agg, through the same domain code
// the write side uses, and returns the position of the last one.
func replay(ctx context.Context, streams *replayCache, stream string, asOf time.Time, agg interface{ Apply(domain.Event) }) (uint64, error) {
	events, err := streams.upTo(ctx, stream, asOf)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, e := range events {
		agg.Apply(e.event)
		last = e.position
	}
	return last, nil
}

func (a *API) asOf(r *http.Request) (readhttp.Reply, error) {
	for name := range r.URL.Query() {
		if name != "asOf" && name != "minPosition" && name != "reason" {
			return readhttp.Reply{}, problem.New(http.StatusBadRequest, name, "asOf takes no other parameter but minPosition and reason")
		}
	}
	if err := a.consistency.WaitFor(r, documents.LearnersProjection); err != nil {
		return readhttp.Reply{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("asOf"))
	if err != nil {
		return readhttp.Reply{}, problem.New(http.StatusBadRequest, "asOf", asOfHelp(r.URL.Query().Get("asOf")))
	}
	state, err := a.StateAsOf(r.Context(), chi.URLParam(r, "id"), at)
	if err != nil {
		return readhttp.Reply{}, err
	}
	body, err := json.Marshal(state)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return readhttp.Reply{Body: body, ETag: `"a` + strconv.FormatUint(state.Position, 10) + `-` + strconv.FormatInt(at.UnixNano(), 36) + `"`, Private: true}, nil
}

// StateAsOf replays learner id's state as recorded at instant at; 404 for an id that is no
// registered learner. The caller decides first whether the reader may see it
// (access.ReadLearner, with learner.RecordStateAsOf).
func (a *API) StateAsOf(ctx context.Context, id string, at time.Time) (StateAsOf, error) {
	if err := a.knownLearner(ctx, id); err != nil {
		return StateAsOf{}, err
	}
	l := learner.New(id)
	pos, err := replayAsOf(ctx, a, learner.StreamPrefix+id, at, l, func(s learner.State) aggregate {
		l = learner.Restore(id, s)
		return l
	})
	if err != nil {
		return StateAsOf{}, err
	}
	state := StateAsOf{LearnerID: id, AsOf: at.UTC(), Position: pos, Enrollments: []EnrollmentAsOf{}}
	enrollments := l.Enrollments()
	courses, err := replayCourses(ctx, a, enrollments, at)
	if err != nil {
		return StateAsOf{}, err
	}
	for i, en := range enrollments {
		c := courses[i]
		done := 0
		for _, m := range en.CompletedModules {
			if c.HasModule(m) {
				done++
			}
		}
		e := EnrollmentAsOf{CourseID: en.CourseID, Status: string(en.Status), CompletedModules: en.CompletedModules,
			ModuleCount: c.ModuleCount(), Progress: documents.Rate(done, c.ModuleCount()), EnrolledAt: en.EnrolledAt.UTC()}
		if e.CompletedModules == nil {
			e.CompletedModules = []string{}
		}
		if !en.CompletedAt.IsZero() {
			t := en.CompletedAt.UTC()
			e.CompletedAt = &t
		}
		state.Enrollments = append(state.Enrollments, e)
	}
	return state, nil
}

// asOfHelp explains a refused asOf. A + in a query string means a space, so an offset such as
// +02:00 sent as it is arrives as " 02:00": say how to send it.
func asOfHelp(raw string) string {
	const form = "must be an RFC 3339 time such as 2026-09-01T12:00:00Z or 2026-09-01T14:00:00%2B02:00"
	if strings.Contains(raw, " ") {
		return form + ": a + in a query string means a space, so send the offset's + as %2B"
	}
	return form + " (send an offset's + as %2B)"
}

// splitType separates a stored type into its name and schema version: learner.enrolled.v1 is
// learner.enrolled at version 1.
func splitType(stored string) (string, int) {
	i := strings.LastIndex(stored, ".v")
	if i < 0 {
		return stored, 1
	}
	v, err := strconv.Atoi(stored[i+2:])
	if err != nil {
		return stored, 1
	}
	return stored[:i], v
}

// position is where a page of the history begins: an event of the learner's stream, by version,
// and for the xAPI export the statement among those the event yields.
type position struct {
	version   uint64
	statement int
}

// String is the cursor of the page that begins at p.
func (p position) String() string {
	s := strconv.FormatUint(p.version, 10)
	if p.statement > 0 {
		s += "." + strconv.Itoa(p.statement)
	}
	return s
}

// eventCursor reads the cursor of the event listings: the version of the page's first event.
func eventCursor(raw string) (position, bool) {
	v, err := strconv.ParseUint(raw, 10, 64)
	return position{version: v}, err == nil && v > 0
}

// historyPage reads what the paged history routes share: the learner, the page size, and where
// the page starts, from a cursor that cursor reads. params are the query parameters the route
// takes.
func (a *API) historyPage(r *http.Request, cursor func(string) (position, bool), params ...string) (id string, limit int, from position, err error) {
	qs := r.URL.Query()
	if err := readhttp.OnlyParams(r, params...); err != nil {
		return "", 0, position{}, err
	}
	// The log is always current, but whether the learner exists is known from the read models.
	if err := a.consistency.WaitFor(r, documents.LearnersProjection); err != nil {
		return "", 0, position{}, err
	}
	if limit, err = readhttp.Limit(r); err != nil {
		return "", 0, position{}, err
	}
	from = position{version: 1}
	if raw := qs.Get("cursor"); raw != "" {
		var ok bool
		if from, ok = cursor(raw); !ok {
			return "", 0, position{}, problem.New(http.StatusBadRequest, "cursor", "is not a cursor this listing returned")
		}
	}
	id = chi.URLParam(r, "id")
	return id, limit, from, a.knownLearner(r.Context(), id)
}

// historyParams are the query parameters of the learner history in its pages.
var historyParams = []string{"limit", "cursor", "minPosition", "format", "reason"}

func (a *API) history(r *http.Request) (readhttp.Reply, error) {
	id, limit, from, err := a.historyPage(r, eventCursor, historyParams...)
	if err != nil {
		return readhttp.Reply{}, err
	}
	events, err := a.log.ReadStream(r.Context(), learner.StreamPrefix+id, from.version, limit+1)
	if err != nil {
		return readhttp.Reply{}, err
	}
	p := readhttp.Page[HistoryEvent]{Items: make([]HistoryEvent, 0, min(len(events), limit))}
	for i, e := range events {
		if i == limit {
			p.Next(strconv.FormatUint(e.Version, 10))
			break
		}
		name, v := splitType(e.Type)
		p.Items = append(p.Items, HistoryEvent{Type: name, SchemaVersion: v, StreamVersion: e.Version, Position: e.Position,
			RecordedAt: e.RecordedAt, Data: json.RawMessage(e.Data), CorrelationID: e.Metadata.CorrelationID,
			CausationID: e.Metadata.CausationID, RequestID: e.Metadata.RequestID, ActingUser: e.Metadata.UserID})
	}
	body, err := json.Marshal(p)
	if err != nil {
		return readhttp.Reply{}, err
	}
	etag := `"h0"`
	if n := len(p.Items); n > 0 {
		etag = `"h` + strconv.FormatUint(p.Items[n-1].Position, 10) + `-` + strconv.Itoa(n) + `"`
	}
	return readhttp.Reply{Body: body, ETag: etag, Private: true}, nil
}

// DisclosureItem is one recorded read of a learner's records by someone else.
type DisclosureItem struct {
	RecipientID   string         `json:"recipientId"`
	RecipientRole string         `json:"recipientRole"`
	Record        learner.Record `json:"record"`
	Reason        string         `json:"reason"`
	At            time.Time      `json:"at"`
	Position      uint64         `json:"position"`
}

// disclosureBatch is how many events of the learner's stream one read looks through.
const disclosureBatch = 500

// disclosures lists who read a learner's records, oldest first, from the learner's stream: the
// log is the record of them, so nothing else can disagree with it.
func (a *API) disclosures(r *http.Request) (readhttp.Reply, error) {
	if err := access.MayListDisclosures(r, chi.URLParam(r, "id")); err != nil {
		return readhttp.Reply{}, err
	}
	id, limit, start, err := a.historyPage(r, eventCursor, "limit", "cursor", "minPosition")
	if err != nil {
		return readhttp.Reply{}, err
	}
	from := start.version
	typ := learner.DisclosureRecorded{}.EventType()
	p := readhttp.Page[DisclosureItem]{Items: []DisclosureItem{}}
	for {
		events, err := a.log.ReadStream(r.Context(), learner.StreamPrefix+id, from, disclosureBatch)
		if err != nil {
			return readhttp.Reply{}, err
		}
		for _, e := range events {
			if e.Type != typ {
				continue
			}
			if len(p.Items) == limit {
				p.Next(strconv.FormatUint(e.Version, 10))
				break
			}
			var d learner.DisclosureRecorded
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return readhttp.Reply{}, fmt.Errorf("decode %s at version %d: %w", e.StreamID, e.Version, err)
			}
			p.Items = append(p.Items, DisclosureItem{RecipientID: d.RecipientID, RecipientRole: d.RecipientRole,
				Record: d.Record, Reason: d.Reason, At: d.At.UTC(), Position: e.Position})
		}
		if p.NextCursor != nil || len(events) < disclosureBatch {
			break
		}
		from = events[len(events)-1].Version + 1
	}
	body, err := json.Marshal(p)
	if err != nil {
		return readhttp.Reply{}, err
	}
	etag := `"d0"`
	if n := len(p.Items); n > 0 {
		etag = `"d` + strconv.FormatUint(p.Items[n-1].Position, 10) + `-` + strconv.Itoa(n) + `"`
	}
	return readhttp.Reply{Body: body, ETag: etag, Private: true}, nil
}
