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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/auth"
	"github.com/edutrack/edutrack/cache"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/problem"
	"github.com/edutrack/edutrack/readmodel"
	"github.com/edutrack/edutrack/readstore"
)

//go:embed openapi.json
var openAPI []byte

// Store is what the read API needs of the read store.
type Store interface {
	Get(ctx context.Context, coll, id string) (readstore.Doc, error)
	Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error)
}

// Positions tells how far projections have come and waits for them.
type Positions interface {
	Wait(ctx context.Context, pos uint64, projections ...string) error
}

// Options tune the API.
type Options struct {
	// ConsistencyWait bounds how long a read waits for minPosition (default 3s).
	ConsistencyWait time.Duration
	// XAPIHomePage is the homePage of learners' accounts in xAPI statements, and the base of
	// activity ids (default "https://edutrack.invalid": set it to the school's address).
	XAPIHomePage string
	// CacheKey names a document's cache entry (default collection:id). With generations of
	// read models, the key names the generation serving, so a new one never meets an old
	// one's entries.
	CacheKey func(coll, id string) string
	// Disclosures records reads of a learner's records by someone else. Without it such reads
	// answer 503: the records may only be disclosed once the disclosure is recorded.
	Disclosures Disclosures
}

// API serves the read routes.
type API struct {
	store     Store
	cache     cache.Cache
	positions Positions
	log       *slog.Logger
	opts      Options
	hits      *prometheus.CounterVec
	misses    *prometheus.CounterVec

	// The roles each kind of route admits; see Routes.
	readers, teachers, learnerRecords func(http.Handler) http.Handler
}

// New returns the read API.
func New(store Store, c cache.Cache, positions Positions, reg prometheus.Registerer, log *slog.Logger, opts Options) (*API, error) {
	if store == nil || c == nil || positions == nil || reg == nil || log == nil {
		return nil, errors.New("readapi: every dependency is required")
	}
	if opts.ConsistencyWait <= 0 {
		opts.ConsistencyWait = 3 * time.Second
	}
	if opts.XAPIHomePage == "" {
		opts.XAPIHomePage = "https://edutrack.invalid"
	}
	if opts.CacheKey == nil {
		opts.CacheKey = func(coll, id string) string { return coll + ":" + id }
	}
	a := &API{store: store, cache: c, positions: positions, log: log, opts: opts,
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "hits_total", Help: "Reads served from the cache, by read model."}, []string{"read_model"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "misses_total", Help: "Reads the cache could not serve, by read model."}, []string{"read_model"}),
	}
	for _, c := range []prometheus.Collector{a.hits, a.misses} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	a.readers = auth.Restrict(log, auth.Learner, auth.Instructor, auth.Admin)
	a.teachers = auth.Restrict(log, auth.Instructor, auth.Admin)
	a.learnerRecords = auth.Restrict(log, auth.Learner, auth.Admin, auth.Auditor)
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
}

// ServeOpenAPI answers the API's description. It is public, so it is mounted apart from Routes.
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}

// reply is a successful read: its body, its strong validator and whether it is private.
type reply struct {
	body    []byte
	etag    string
	private bool
}

func (a *API) handle(fn func(r *http.Request) (reply, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rep, err := fn(r)
		if err != nil {
			var pe *problem.Error
			if errors.As(err, &pe) && pe.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			problem.Write(w, r, a.log, err)
			return
		}
		h := w.Header()
		h.Set("ETag", rep.etag)
		if rep.private {
			h.Set("Cache-Control", "private, no-cache")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, rep.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		w.Write(rep.body)
	}
}

// etagMatches compares If-None-Match weakly, as RFC 9110 asks: W/"7" matches "7".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		if t = strings.TrimPrefix(strings.TrimSpace(t), "W/"); t == etag || t == "*" {
			return true
		}
	}
	return false
}

// waitFor honours the minPosition parameter for the projections behind a route.
func (a *API) waitFor(r *http.Request, projections ...string) error {
	raw := r.URL.Query().Get("minPosition")
	if raw == "" {
		return nil
	}
	pos, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return problem.New(http.StatusBadRequest, "minPosition", "must be a non-negative integer")
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.ConsistencyWait)
	defer cancel()
	if err := a.positions.Wait(ctx, pos, projections...); err != nil {
		return problem.New(http.StatusServiceUnavailable, "minPosition",
			fmt.Sprintf("the read model has not reached position %d yet; retry shortly", pos))
	}
	return nil
}

// onlyParams refuses any query parameter but allowed.
func onlyParams(r *http.Request, allowed ...string) error {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) {
			return problem.New(http.StatusBadRequest, name, "unknown query parameter")
		}
	}
	return nil
}

// load returns document id of coll, cache first; what names it in the 404.
func (a *API) load(r *http.Request, coll, id, what string) (cache.Entry, error) {
	key := a.opts.CacheKey(coll, id)
	if e, ok := a.cache.Get(r.Context(), key); ok {
		a.hits.WithLabelValues(coll).Inc()
		return e, nil
	}
	a.misses.WithLabelValues(coll).Inc()
	d, err := a.store.Get(r.Context(), coll, id)
	if errors.Is(err, readstore.ErrNotFound) {
		return cache.Entry{}, problem.New(http.StatusNotFound, "", what+" not found")
	}
	if err != nil {
		return cache.Entry{}, err
	}
	e := cache.Entry{Position: d.Position, Body: d.Body}
	a.cache.Set(r.Context(), key, e)
	return e, nil
}

// docReply answers a document as stored, with its position as the strong validator.
func docReply(e cache.Entry, private bool) reply {
	return reply{body: e.Body, etag: `"` + strconv.FormatUint(e.Position, 10) + `"`, private: private}
}

func (a *API) courseDetails(r *http.Request) (reply, error) {
	if err := onlyParams(r, "minPosition"); err != nil {
		return reply{}, err
	}
	if err := a.waitFor(r, readmodel.CoursesProjection); err != nil {
		return reply{}, err
	}
	e, err := a.load(r, readmodel.CourseDetails, chi.URLParam(r, "id"), "course")
	if err != nil {
		return reply{}, err
	}
	if err := mayView(r, e.Body); err != nil {
		return reply{}, err
	}
	return docReply(e, false), nil
}

func (a *API) courseStats(r *http.Request) (reply, error) {
	if err := onlyParams(r, "minPosition"); err != nil {
		return reply{}, err
	}
	if err := a.waitFor(r, readmodel.CoursesProjection); err != nil {
		return reply{}, err
	}
	id := chi.URLParam(r, "id")
	if err := a.mayTeach(r, id, false); err != nil {
		return reply{}, err
	}
	e, err := a.load(r, readmodel.Stats, id, "course")
	if err != nil {
		return reply{}, err
	}
	return docReply(e, false), nil
}

func (a *API) dashboard(r *http.Request) (reply, error) {
	if err := onlyParams(r, "minPosition", "reason"); err != nil {
		return reply{}, err
	}
	id := chi.URLParam(r, "id")
	read, err := a.learnerRead(r, id, learner.RecordDashboard)
	if err != nil {
		return reply{}, err
	}
	if err := a.waitFor(r, readmodel.LearnersProjection); err != nil {
		return reply{}, err
	}
	e, err := a.load(r, readmodel.Dashboards, id, "learner")
	if err != nil {
		return reply{}, err
	}
	if err := read.disclose(r); err != nil {
		return reply{}, err
	}
	return docReply(e, true), nil
}

// page is one page of a listing.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
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

func limitOf(r *http.Request) (int, error) {
	raw := r.URL.Query().Get("limit")
	if raw == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 100 {
		return 0, problem.New(http.StatusBadRequest, "limit", "must be an integer from 1 to 100")
	}
	return n, nil
}

// listing runs q one item past limit, to know whether a next page exists, and answers the page
// with an ETag over the ids and positions of its documents.
func listing[T, O any](a *API, r *http.Request, q readstore.Query, limit int, sortName string, sortValues func(T) []any, item func(T) O, private bool) (reply, error) {
	q.Limit = limit + 1
	docs, err := a.store.Find(r.Context(), q)
	if err != nil {
		return reply{}, err
	}
	p := page[O]{Items: make([]O, 0, min(len(docs), limit))}
	h := fnv.New64a()
	var last T
	for i, d := range docs {
		if i == limit {
			p.NextCursor = encodeCursor(sortName, sortValues(last), docs[i-1].ID)
			break
		}
		var doc T // fresh each time: decoding into a reused value would share its pointers
		if err := json.Unmarshal(d.Body, &doc); err != nil {
			return reply{}, fmt.Errorf("decode %s/%s: %w", q.Coll, d.ID, err)
		}
		last = doc
		p.Items = append(p.Items, item(doc))
		fmt.Fprintf(h, "%s@%d;", d.ID, d.Position)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return reply{}, err
	}
	return reply{body: body, etag: fmt.Sprintf(`"l%x"`, h.Sum64()), private: private}, nil
}

var sorts = map[string]readstore.Order{
	"newest":  {Name: "publishedN", Desc: true},
	"popular": {Name: "enrollmentCount", Desc: true},
	"title":   {Name: "titleKey"},
}

func (a *API) catalog(r *http.Request) (reply, error) {
	qs := r.URL.Query()
	if err := onlyParams(r, "category", "level", "instructorId", "q", "sort", "limit", "cursor", "minPosition"); err != nil {
		return reply{}, err
	}
	if err := a.waitFor(r, readmodel.CoursesProjection); err != nil {
		return reply{}, err
	}
	limit, err := limitOf(r)
	if err != nil {
		return reply{}, err
	}
	sortName := qs.Get("sort")
	if sortName == "" {
		sortName = "newest"
	}
	order, ok := sorts[sortName]
	if !ok {
		return reply{}, problem.New(http.StatusBadRequest, "sort", "must be newest, popular or title")
	}
	q := readstore.Query{Coll: readmodel.Catalog, Eq: []readstore.Field{{Name: "status", Value: "published"}},
		Sort: []readstore.Order{order}}
	for _, f := range []string{"category", "level", "instructorId"} {
		if v := qs.Get(f); v != "" {
			q.Eq = append(q.Eq, readstore.Field{Name: f, Value: v})
		}
	}
	if level := qs.Get("level"); level != "" && level != "beginner" && level != "intermediate" && level != "advanced" {
		return reply{}, problem.New(http.StatusBadRequest, "level", "must be beginner, intermediate or advanced")
	}
	if words := readmodel.Words(qs.Get("q")); len(words) > 0 {
		q.ContainsAll = []readstore.Terms{{Name: "titleWords", Values: words}}
	}
	if q.After, err = decodeCursor(qs.Get("cursor"), sortName, 1); err != nil {
		return reply{}, err
	}
	return listing(a, r, q, limit, sortName, func(e readmodel.CatalogEntry) []any {
		switch sortName {
		case "popular":
			return []any{e.EnrollmentCount}
		case "title":
			return []any{e.TitleKey}
		default:
			return []any{e.PublishedN}
		}
	}, func(e readmodel.CatalogEntry) readmodel.CatalogItem { return e.CatalogItem }, false)
}

func (a *API) roster(r *http.Request) (reply, error) {
	qs := r.URL.Query()
	if err := onlyParams(r, "limit", "cursor", "minPosition"); err != nil {
		return reply{}, err
	}
	if err := a.waitFor(r, readmodel.CoursesProjection, readmodel.LearnersProjection); err != nil {
		return reply{}, err
	}
	limit, err := limitOf(r)
	if err != nil {
		return reply{}, err
	}
	id := chi.URLParam(r, "id")
	if err := a.mayTeach(r, id, true); err != nil {
		return reply{}, err
	}
	q := readstore.Query{Coll: readmodel.Rosters, Eq: []readstore.Field{{Name: "courseId", Value: id}},
		Sort: []readstore.Order{{Name: "enrolledAtN"}}}
	if q.After, err = decodeCursor(qs.Get("cursor"), "enrolled", 1); err != nil {
		return reply{}, err
	}
	return listing(a, r, q, limit, "enrolled", func(e readmodel.RosterEntry) []any { return []any{e.EnrolledAtN} },
		func(e readmodel.RosterEntry) readmodel.RosterItem { return e.RosterItem }, true)
}
