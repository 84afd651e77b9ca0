// Package readapi is the read HTTP API: it serves the read models to the frontend, cache first,
// waits for the projections when a client asks to read its own writes, lets each caller read
// only what their role and ownership allow, and reports health and metrics. It never appends to
// the event log: a read that must be recorded goes through Disclosures.
package readapi

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth"
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
	GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error)
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
	// Files, if not nil, signs the links of module files; without it their route answers 503.
	Files FileLinks
	// CatalogMaxAge is how old a catalog page this process keeps may be and still answer a
	// reader who did not ask for a later minPosition. At 0 a page answers only until the
	// courses projection moves.
	CatalogMaxAge time.Duration
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
	courses     *access.Courses
	mediaBytes  *mediaCache
	// catalogPages keeps the catalog's pages, which the document cache does not hold.
	catalogPages *catalogCache

	// The roles each kind of route admits; see Routes.
	readers, teachers, learnerRecords, everyone func(http.Handler) http.Handler
}

// courseFacts is how many courses' access facts the API keeps decoded: the courses a school
// reads at once, at about 150 bytes each.
const courseFacts = 16384

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
	var err error
	if a.courses, err = access.NewCourses(courseFacts); err != nil {
		return nil, err
	}
	a.catalogPages, err = newCatalogCache(positions, opts.CatalogMaxAge, a.hits.WithLabelValues(documents.Catalog), a.misses.WithLabelValues(documents.Catalog))
	if err != nil {
		return nil, err
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
	r.With(a.everyone).Get("/v1/courses/{id}/modules/{moduleId}/files/{fileId}", a.moduleFile)
}

func (a *API) handle(fn func(r *http.Request) (readhttp.Reply, error)) http.HandlerFunc {
	return readhttp.Handler(a.log, fn)
}

// ServeOpenAPI answers the API's description. It is public, so it is mounted apart from Routes.
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}

// Load returns document id of coll, which projection writes, cache first; what names it in the
// 404.
//
// An entry is served only if it is known current as of the projection's cache fence: a cache
// write that failed (Redis paused, failing over, out of memory) raised the fence past the
// entries it may have left behind. Any other entry is read again from the store and written back
// known current as of the position this process knew before that read: past the fence, and
// enough for any minPosition it has waited for, so the cache fills again on its own.
func (a *API) Load(ctx context.Context, projection, coll, id, what string) (cache.Entry, error) {
	if e, ok := a.cached(ctx, projection, coll, id); ok {
		return e, nil
	}
	known := a.positions.Position(projection) // before the store read, which is then at least as new
	d, err := a.store.Get(ctx, coll, id)
	if errors.Is(err, readstore.ErrNotFound) {
		return cache.Entry{}, readhttp.NotFound(what)
	}
	if err != nil {
		return cache.Entry{}, err
	}
	return a.fill(ctx, coll, d, known), nil
}

// LoadMany is Load of many documents, with one read of the store for those the cache cannot
// serve. The documents that do not exist are absent from the answer.
func (a *API) LoadMany(ctx context.Context, projection, coll string, ids []string) (map[string]cache.Entry, error) {
	out := make(map[string]cache.Entry, len(ids))
	var missed []string
	for _, id := range ids {
		if e, ok := a.cached(ctx, projection, coll, id); ok {
			out[id] = e
		} else {
			missed = append(missed, id)
		}
	}
	if len(missed) == 0 {
		return out, nil
	}
	known := a.positions.Position(projection)
	docs, err := a.store.GetMany(ctx, coll, missed)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.ID] = a.fill(ctx, coll, d, known)
	}
	return out, nil
}

// cached answers the cache's entry of a document if it may be served; a miss is counted.
func (a *API) cached(ctx context.Context, projection, coll, id string) (cache.Entry, bool) {
	if fence, ok := a.positions.CacheFence(projection); ok {
		if e, hit := a.cache.Get(ctx, a.opts.CacheKey(coll, id)); hit {
			if e.ValidAsOf() >= fence {
				a.hits.WithLabelValues(coll).Inc()
				return e, true
			}
			a.stale.WithLabelValues(coll).Inc()
		}
	}
	a.misses.WithLabelValues(coll).Inc()
	return cache.Entry{}, false
}

// fill writes a document read from the store back to the cache, known current as of known.
func (a *API) fill(ctx context.Context, coll string, d readstore.Doc, known uint64) cache.Entry {
	e := cache.Entry{Position: d.Position, AsOf: known, Body: d.Body}
	// A write that fails leaves the key as it was: stale entries stay behind the fence.
	_ = a.cache.Set(ctx, a.opts.CacheKey(coll, d.ID), e)
	return e
}

// Position is the log position projection has reached, as this process knows it.
func (a *API) Position(projection string) uint64 { return a.positions.Position(projection) }

// WaitFor waits, bounded, until projections have reached minPosition, and answers 503 when they
// do not in time, as the routes do for their minPosition parameter.
func (a *API) WaitFor(ctx context.Context, minPosition uint64, projections ...string) error {
	return a.consistency.WaitAt(ctx, minPosition, projections...)
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
	caller, err := access.Caller(r)
	if err != nil {
		return readhttp.Reply{}, err
	}
	e, c, err := a.course(r.Context(), caller, chi.URLParam(r, "id"))
	if err != nil {
		return readhttp.Reply{}, err
	}
	if err := c.MayView(caller); err != nil {
		return readhttp.Reply{}, err
	}
	e.Body = documents.MediaURLs(e.Body, a.opts.MediaBaseURL)
	return docReply(e, false), nil
}

// course returns course id's details and, unless caller is an admin, who may read everything,
// their access facts: decoded once per version of the document, not on every read.
func (a *API) course(ctx context.Context, caller domain.Actor, id string) (cache.Entry, access.Course, error) {
	e, err := a.Load(ctx, documents.CoursesProjection, documents.CourseDetails, id, "course")
	if err != nil || caller.Role == domain.Admin {
		return e, access.Course{}, err
	}
	c, err := a.courses.Facts(a.opts.CacheKey(documents.CourseDetails, id), e.Position, e.Body)
	return e, c, err
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
	e, err := a.Load(r.Context(), documents.CoursesProjection, documents.Stats, id, "course")
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
	e, err := a.Load(r.Context(), documents.LearnersProjection, documents.Dashboards, id, "learner")
	if err != nil {
		return readhttp.Reply{}, err
	}
	if err := read.Disclose(r.Context()); err != nil {
		return readhttp.Reply{}, err
	}
	return docReply(e, true), nil
}
