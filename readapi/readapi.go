// Package readapi is the read HTTP API: it serves the read models to the frontend, cache first,
// waits for the projections when a client asks to read its own writes, lets each caller read
// only what their role and ownership allow, and reports health and metrics. It never appends to
// the event log: a read that must be recorded goes through Disclosures.
package readapi

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

//go:embed openapi.json
var openAPI []byte

// Store is what the read API needs of the read store.
type Store interface {
	Get(ctx context.Context, coll, id string) (readstore.Doc, error)
	Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error)
}

// Positions tells how far projections have come, waits for them, and tells which cache entries
// may be trusted (projections.Positions is one).
type Positions interface {
	readhttp.Positions
	// Position is how far projection has come, as this process knows.
	Position(projection string) uint64
	// CacheFence is the position as of which an entry of projection must be known current
	// (cache.Entry.AsOf) to be served; known is false until the process has learned it, and
	// until then no entry is served.
	CacheFence(projection string) (fence uint64, known bool)
}

// Options tune the API.
type Options struct {
	// ConsistencyWait bounds how long a read waits for minPosition (default 3s).
	ConsistencyWait time.Duration
	// Waits, if not nil, measures the reads' waits for their minPosition.
	Waits *readhttp.WaitMetrics
	// CacheKey names a document's cache entry (default collection:id). With generations of
	// read models, the key names the generation serving, so a new one never meets an old
	// one's entries.
	CacheKey func(coll, id string) string
	// Disclosures records reads of a learner's records by someone else. Without it such reads
	// answer 503: the records may only be disclosed once the disclosure is recorded.
	Disclosures access.Disclosures
	// Blobs, if not nil, holds the certificates' PDFs and the media; without it their routes
	// answer 503.
	Blobs Blobs
	// MediaBaseURL, if set, is where the media URLs of the read models point instead of this
	// process's GET /media (documents.MediaURLs): a CDN, or the bucket itself.
	MediaBaseURL string
}

// API serves the read routes.
type API struct {
	store       Store
	cache       cache.Cache
	positions   Positions
	consistency readhttp.Consistency
	log         *slog.Logger
	opts        Options
	hits        *prometheus.CounterVec
	misses      *prometheus.CounterVec
	stale       *prometheus.CounterVec
	mediaBytes  *mediaCache

	// The roles each kind of route admits; see Routes.
	readers, teachers, learnerRecords, everyone func(http.Handler) http.Handler
}

// New returns the read API.
func New(store Store, c cache.Cache, positions Positions, reg prometheus.Registerer, log *slog.Logger, opts Options) (*API, error) {
	if store == nil || c == nil || positions == nil || reg == nil || log == nil {
		return nil, errors.New("readapi: every dependency is required")
	}
	if opts.ConsistencyWait <= 0 {
		opts.ConsistencyWait = 3 * time.Second
	}
	if opts.CacheKey == nil {
		opts.CacheKey = func(coll, id string) string { return coll + ":" + id }
	}
	a := &API{store: store, cache: c, positions: positions, mediaBytes: newMediaCache(),
		consistency: readhttp.Consistency{Positions: positions, Wait: opts.ConsistencyWait, Waits: opts.Waits}, log: log, opts: opts,
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "hits_total", Help: "Reads served from the cache, by read model."}, []string{"read_model"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "misses_total", Help: "Reads the cache could not serve, by read model."}, []string{"read_model"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "stale_total", Help: "Cache entries found but not served, by read model: known current only as of a position " +
				"before the projection's cache fence (raised by a failed cache write, or a new generation going live). " +
				"Each is also a miss."}, []string{"read_model"}),
	}
	for _, c := range []prometheus.Collector{a.hits, a.misses, a.stale} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	a.readers = auth.Restrict(log, access.Readers...)
	a.teachers = auth.Restrict(log, access.Teachers...)
	a.learnerRecords = auth.Restrict(log, access.LearnerRecords...)
	a.everyone = auth.Restrict(log, access.Everyone...)
	return a, nil
}

// Routes mounts the read routes on r, behind an authenticator that puts the caller in each
// request's context. Each route names the roles that may ever read it (403 for the others);
// which objects a caller may read the handlers decide once they know the object (access.go).
func (a *API) Routes(r chi.Router) {
	r.With(a.readers).Get("/v1/courses", a.handle(a.catalog))
	r.With(a.readers).Get("/v1/courses/{id}", a.handle(a.courseDetails))
	r.With(a.teachers).Get("/v1/courses/{id}/stats", a.handle(a.courseStats))
	r.With(a.teachers).Get("/v1/courses/{id}/roster", a.handle(a.roster))
	r.With(a.learnerRecords).Get("/v1/learners/{id}/dashboard", a.handle(a.dashboard))
	r.With(a.everyone).Get("/v1/learners/{id}/certificates/{courseId}", a.certificatePDF)
}

func (a *API) handle(fn func(r *http.Request) (readhttp.Reply, error)) http.HandlerFunc {
	return readhttp.Handler(a.log, fn)
}

// ServeOpenAPI answers the API's description. It is public, so it is mounted apart from Routes.
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}

// load returns document id of coll, which projection writes, cache first; what names it in the
// 404.
//
// An entry is served only if it is known current as of the projection's cache fence: a cache
// write that failed (Redis paused, failing over, out of memory) raised the fence past the
// entries it may have left behind. Any other entry is read again from the store and written back
// known current as of the position this process knew before that read: past the fence, and
// enough for any minPosition it has waited for, so the cache fills again on its own.
func (a *API) load(r *http.Request, projection, coll, id, what string) (cache.Entry, error) {
	ctx := r.Context()
	key := a.opts.CacheKey(coll, id)
	known := a.positions.Position(projection) // before the store read, which is then at least as new
	if fence, ok := a.positions.CacheFence(projection); ok {
		if e, hit := a.cache.Get(ctx, key); hit {
			if e.ValidAsOf() >= fence {
				a.hits.WithLabelValues(coll).Inc()
				return e, nil
			}
			a.stale.WithLabelValues(coll).Inc()
		}
	}
	a.misses.WithLabelValues(coll).Inc()
	d, err := a.store.Get(ctx, coll, id)
	if errors.Is(err, readstore.ErrNotFound) {
		return cache.Entry{}, readhttp.NotFound(what)
	}
	if err != nil {
		return cache.Entry{}, err
	}
	e := cache.Entry{Position: d.Position, AsOf: known, Body: d.Body}
	// A write that fails leaves the key as it was: stale entries stay behind the fence.
	_ = a.cache.Set(ctx, key, e)
	return e, nil
}

// docReply answers a document as stored, with its position as the strong validator.
func docReply(e cache.Entry, private bool) readhttp.Reply {
	return readhttp.Reply{Body: e.Body, ETag: `"` + strconv.FormatUint(e.Position, 10) + `"`, Private: private}
}

func (a *API) courseDetails(r *http.Request) (readhttp.Reply, error) {
	if err := readhttp.OnlyParams(r, "minPosition"); err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.CoursesProjection); err != nil {
		return readhttp.Reply{}, err
	}
	e, err := a.load(r, documents.CoursesProjection, documents.CourseDetails, chi.URLParam(r, "id"), "course")
	if err != nil {
		return readhttp.Reply{}, err
	}
	caller, err := access.Caller(r)
	if err != nil {
		return readhttp.Reply{}, err
	}
	if err := access.MayView(caller, e.Body); err != nil {
		return readhttp.Reply{}, err
	}
	e.Body = documents.MediaURLs(e.Body, a.opts.MediaBaseURL)
	return docReply(e, false), nil
}

func (a *API) courseStats(r *http.Request) (readhttp.Reply, error) {
	if err := readhttp.OnlyParams(r, "minPosition"); err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.CoursesProjection); err != nil {
		return readhttp.Reply{}, err
	}
	id := chi.URLParam(r, "id")
	if err := a.mayTeach(r, id, false); err != nil {
		return readhttp.Reply{}, err
	}
	e, err := a.load(r, documents.CoursesProjection, documents.Stats, id, "course")
	if err != nil {
		return readhttp.Reply{}, err
	}
	return docReply(e, false), nil
}

func (a *API) dashboard(r *http.Request) (readhttp.Reply, error) {
	if err := readhttp.OnlyParams(r, "minPosition", "reason"); err != nil {
		return readhttp.Reply{}, err
	}
	id := chi.URLParam(r, "id")
	read, err := access.ReadLearner(r, id, learner.RecordDashboard, a.opts.Disclosures)
	if err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.LearnersProjection); err != nil {
		return readhttp.Reply{}, err
	}
	e, err := a.load(r, documents.LearnersProjection, documents.Dashboards, id, "learner")
	if err != nil {
		return readhttp.Reply{}, err
	}
	if err := read.Disclose(r.Context()); err != nil {
		return readhttp.Reply{}, err
	}
	return docReply(e, true), nil
}

// cursor is the opaque listing position a client gets back. It names its sort, so a cursor
// cannot continue a listing in another order.
type cursor struct {
	Sort   string            `json:"s"`
	Values []json.RawMessage `json:"v"`
	ID     string            `json:"id"`
}

func decodeCursor(raw, sortName string, n int) (*readstore.Cursor, error) {
	if raw == "" {
		return nil, nil
	}
	bad := problem.New(http.StatusBadRequest, "cursor", "is not a cursor this listing returned")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || len(c.Values) != n || c.Sort != sortName {
		return nil, bad
	}
	out := &readstore.Cursor{ID: c.ID}
	for _, v := range c.Values {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			out.Values = append(out.Values, s)
			continue
		}
		i, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, bad
		}
		out.Values = append(out.Values, i)
	}
	return out, nil
}

func encodeCursor(sortName string, values []any, id string) string {
	c := struct {
		Sort   string `json:"s"`
		Values []any  `json:"v"`
		ID     string `json:"id"`
	}{sortName, values, id}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// listing runs q one item past limit, to know whether a next page exists, and answers the page
// with an ETag over the ids and positions of its documents.
func listing[T, O any](a *API, r *http.Request, q readstore.Query, limit int, sortName string, sortValues func(T) []any, item func(T) O, private bool) (readhttp.Reply, error) {
	q.Limit = limit + 1
	docs, err := a.store.Find(r.Context(), q)
	if err != nil {
		return readhttp.Reply{}, err
	}
	p := readhttp.Page[O]{Items: make([]O, 0, min(len(docs), limit))}
	h := fnv.New64a()
	var last T
	for i, d := range docs {
		if i == limit {
			p.Next(encodeCursor(sortName, sortValues(last), docs[i-1].ID))
			break
		}
		var doc T // fresh each time: decoding into a reused value would share its pointers
		if err := json.Unmarshal(d.Body, &doc); err != nil {
			return readhttp.Reply{}, fmt.Errorf("decode %s/%s: %w", q.Coll, d.ID, err)
		}
		last = doc
		p.Items = append(p.Items, item(doc))
		fmt.Fprintf(h, "%s@%d;", d.ID, d.Position)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return readhttp.Reply{}, err
	}
	body = documents.MediaURLs(body, a.opts.MediaBaseURL)
	return readhttp.Reply{Body: body, ETag: fmt.Sprintf(`"l%x"`, h.Sum64()), Private: private}, nil
}

// The catalog search's bounds: each word is a condition of the store's query, and a store has a
// limit on a query's size (SQLite refuses an expression tree past a thousand or so terms). A
// title search needs far less.
const (
	MaxSearchLen   = 200 // characters of q
	MaxSearchWords = 16  // distinct words of q
)

// searchWords reads the catalog's q into the title words it must contain, within the bounds.
func searchWords(q string) ([]string, error) {
	if utf8.RuneCountInString(q) > MaxSearchLen {
		return nil, problem.New(http.StatusBadRequest, "q", fmt.Sprintf("must be at most %d characters", MaxSearchLen))
	}
	words := documents.Words(q)
	if len(words) > MaxSearchWords {
		return nil, problem.New(http.StatusBadRequest, "q", fmt.Sprintf("must have at most %d distinct words", MaxSearchWords))
	}
	return words, nil
}

var sorts = map[string]readstore.Order{
	"newest":  {Name: "publishedN", Desc: true},
	"popular": {Name: "enrollmentCount", Desc: true},
	"title":   {Name: "titleKey"},
}

func (a *API) catalog(r *http.Request) (readhttp.Reply, error) {
	qs := r.URL.Query()
	if err := readhttp.OnlyParams(r, "category", "level", "instructorId", "q", "sort", "limit", "cursor", "minPosition"); err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.CoursesProjection); err != nil {
		return readhttp.Reply{}, err
	}
	limit, err := readhttp.Limit(r)
	if err != nil {
		return readhttp.Reply{}, err
	}
	sortName := qs.Get("sort")
	if sortName == "" {
		sortName = "newest"
	}
	order, ok := sorts[sortName]
	if !ok {
		return readhttp.Reply{}, problem.New(http.StatusBadRequest, "sort", "must be newest, popular or title")
	}
	q := readstore.Query{Coll: documents.Catalog, Eq: []readstore.Field{{Name: "status", Value: "published"}},
		Sort: []readstore.Order{order}}
	for _, f := range []string{"category", "level", "instructorId"} {
		if v := qs.Get(f); v != "" {
			q.Eq = append(q.Eq, readstore.Field{Name: f, Value: v})
		}
	}
	if level := qs.Get("level"); level != "" && level != "beginner" && level != "intermediate" && level != "advanced" {
		return readhttp.Reply{}, problem.New(http.StatusBadRequest, "level", "must be beginner, intermediate or advanced")
	}
	words, err := searchWords(qs.Get("q"))
	if err != nil {
		return readhttp.Reply{}, err
	}
	if len(words) > 0 {
		q.ContainsAll = []readstore.Terms{{Name: "titleWords", Values: words}}
	}
	if q.After, err = decodeCursor(qs.Get("cursor"), sortName, 1); err != nil {
		return readhttp.Reply{}, err
	}
	return listing(a, r, q, limit, sortName, func(e documents.CatalogEntry) []any {
		switch sortName {
		case "popular":
			return []any{e.EnrollmentCount}
		case "title":
			return []any{e.TitleKey}
		default:
			return []any{e.PublishedN}
		}
	}, func(e documents.CatalogEntry) documents.CatalogItem { return e.CatalogItem }, false)
}

func (a *API) roster(r *http.Request) (readhttp.Reply, error) {
	qs := r.URL.Query()
	if err := readhttp.OnlyParams(r, "limit", "cursor", "minPosition"); err != nil {
		return readhttp.Reply{}, err
	}
	if err := a.consistency.WaitFor(r, documents.CoursesProjection, documents.LearnersProjection); err != nil {
		return readhttp.Reply{}, err
	}
	limit, err := readhttp.Limit(r)
	if err != nil {
		return readhttp.Reply{}, err
	}
	id := chi.URLParam(r, "id")
	if err := a.mayTeach(r, id, true); err != nil {
		return readhttp.Reply{}, err
	}
	q := readstore.Query{Coll: documents.Rosters, Eq: []readstore.Field{{Name: "courseId", Value: id}},
		Sort: []readstore.Order{{Name: "enrolledAtN"}}}
	if q.After, err = decodeCursor(qs.Get("cursor"), "enrolled", 1); err != nil {
		return readhttp.Reply{}, err
	}
	return listing(a, r, q, limit, "enrolled", func(e documents.RosterEntry) []any { return []any{e.EnrolledAtN} },
		func(e documents.RosterEntry) documents.RosterItem { return e.RosterItem }, true)
}

// mayTeach lets an instructor read the stats and roster of their own courses, and admins those
// of any. It answers 404 for a course that does not exist, except to an admin when mustExist is
// false: the document the admin reads answers for itself.
func (a *API) mayTeach(r *http.Request, courseID string, mustExist bool) error {
	caller, err := access.Caller(r)
	if err != nil {
		return err
	}
	if caller.Role == domain.Admin {
		if !mustExist {
			return nil
		}
		if _, err := a.store.Get(r.Context(), documents.CourseDetails, courseID); errors.Is(err, readstore.ErrNotFound) {
			return readhttp.NotFound("course")
		} else if err != nil {
			return err
		}
		return nil
	}
	e, err := a.load(r, documents.CoursesProjection, documents.CourseDetails, courseID, "course")
	if err != nil {
		return err
	}
	return access.MayTeach(caller, e.Body)
}
