package readapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

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

// Listing is one page of a listing's documents, decoded.
type Listing[T any] struct {
	Items []T
	// Cursors are the cursor of each item: a listing that continues after it.
	Cursors []string
	// Next is the cursor of the next page, nil on the last one.
	Next *string
	// ETag is over the ids and positions of the page's documents.
	ETag string

	bytes int // of the documents' JSON, as read: what the catalog cache weighs a page by
}

// findPage runs q one item past limit, to know whether a next page exists.
func findPage[T any](ctx context.Context, store Store, q readstore.Query, limit int, sortName string, sortValues func(T) []any) (Listing[T], error) {
	q.Limit = limit + 1
	docs, err := store.Find(ctx, q)
	if err != nil {
		return Listing[T]{}, err
	}
	l := Listing[T]{Items: make([]T, 0, min(len(docs), limit))}
	h := fnv.New64a()
	for i, d := range docs {
		if i == limit {
			l.Next = &l.Cursors[i-1]
			break
		}
		var doc T // fresh each time: decoding into a reused value would share its pointers
		if err := json.Unmarshal(d.Body, &doc); err != nil {
			return Listing[T]{}, fmt.Errorf("decode %s/%s: %w", q.Coll, d.ID, err)
		}
		l.Items = append(l.Items, doc)
		l.Cursors = append(l.Cursors, encodeCursor(sortName, sortValues(doc), d.ID))
		l.bytes += len(d.Body)
		fmt.Fprintf(h, "%s@%d;", d.ID, d.Position)
	}
	l.ETag = fmt.Sprintf(`"l%x"`, h.Sum64())
	return l, nil
}

// pageReply answers a listing's page as the routes do: its items, and the cursor of the next.
func pageReply[T, O any](l Listing[T], item func(T) O, private bool) (readhttp.Reply, error) {
	p := readhttp.Page[O]{Items: make([]O, 0, len(l.Items)), NextCursor: l.Next}
	for _, it := range l.Items {
		p.Items = append(p.Items, item(it))
	}
	body, err := json.Marshal(p)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return readhttp.Reply{Body: body, ETag: l.ETag, Private: private}, nil
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

// CatalogParams are what a catalog page asks for; each names its query parameter, which a
// refusal names.
type CatalogParams struct {
	Category, Level, InstructorID, Q string
	Sort                             string // newest (when empty), popular or title
	Limit                            int    // 1 to readhttp.MaxLimit
	Cursor                           string
}

// Catalog answers a page of the published courses, read from the store. The catalog is public
// to every reader, so it decides nothing of who asks.
func (a *API) Catalog(ctx context.Context, p CatalogParams) (Listing[documents.CatalogEntry], error) {
	q, sortName, _, err := catalogQuery(p)
	if err != nil {
		return Listing[documents.CatalogEntry]{}, err
	}
	return readCatalog(ctx, a.store, q, p.Limit, sortName)
}

// CatalogAt is Catalog for a reader that asked for minPosition (0 when it did not), which the
// caller has waited for: it may answer a page this process read before, if the courses
// projection has not moved since, or if the page is younger than Options.CatalogMaxAge and was
// read at minPosition or later. The params are checked before the cache is.
func (a *API) CatalogAt(ctx context.Context, p CatalogParams, minPosition uint64) (Listing[documents.CatalogEntry], error) {
	page, err := a.catalogPage(ctx, p, minPosition)
	if err != nil {
		return Listing[documents.CatalogEntry]{}, err
	}
	return page.listing, nil
}

func (a *API) catalogPage(ctx context.Context, p CatalogParams, minPosition uint64) (*catalogPage, error) {
	q, sortName, key, err := catalogQuery(p)
	if err != nil {
		return nil, err
	}
	return a.catalogPages.page(ctx, a.opts.CacheKey(documents.Catalog, key), minPosition, func(ctx context.Context) (Listing[documents.CatalogEntry], error) {
		return readCatalog(ctx, a.store, q, p.Limit, sortName)
	})
}

func readCatalog(ctx context.Context, store Store, q readstore.Query, limit int, sortName string) (Listing[documents.CatalogEntry], error) {
	return findPage(ctx, store, q, limit, sortName, func(e documents.CatalogEntry) []any {
		switch sortName {
		case "popular":
			return []any{e.EnrollmentCount}
		case "title":
			return []any{e.TitleKey}
		default:
			return []any{e.PublishedN}
		}
	})
}

// catalogQuery checks p and turns it into the store's query, its sort's name, and the key of its
// page in the catalog cache: the same for every p that asks for the same page.
func catalogQuery(p CatalogParams) (q readstore.Query, sortName, key string, err error) {
	sortName = p.Sort
	if sortName == "" {
		sortName = "newest"
	}
	order, ok := sorts[sortName]
	if !ok {
		return q, "", "", problem.New(http.StatusBadRequest, "sort", "must be newest, popular or title")
	}
	q = readstore.Query{Coll: documents.Catalog, Eq: []readstore.Field{{Name: "status", Value: "published"}},
		Sort: []readstore.Order{order}}
	for _, f := range []readstore.Field{{Name: "category", Value: p.Category}, {Name: "level", Value: p.Level}, {Name: "instructorId", Value: p.InstructorID}} {
		if f.Value != "" {
			q.Eq = append(q.Eq, f)
		}
	}
	if p.Level != "" && p.Level != "beginner" && p.Level != "intermediate" && p.Level != "advanced" {
		return q, "", "", problem.New(http.StatusBadRequest, "level", "must be beginner, intermediate or advanced")
	}
	words, err := searchWords(p.Q)
	if err != nil {
		return q, "", "", err
	}
	if len(words) > 0 {
		// A title must contain every word, in any order: one page for any order of them.
		slices.Sort(words)
		q.ContainsAll = []readstore.Terms{{Name: "titleWords", Values: words}}
	}
	if q.After, err = decodeCursor(p.Cursor, sortName, 1); err != nil {
		return q, "", "", err
	}
	// Quoted, so that no value can end inside another's place.
	key = fmt.Sprintf("%q %q %q %q %q %d %q", sortName, p.Category, p.Level, p.InstructorID, words, p.Limit, p.Cursor)
	return q, sortName, key, nil
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
	minPosition, _ := strconv.ParseUint(qs.Get("minPosition"), 10, 64) // checked by the wait
	page, err := a.catalogPage(r.Context(), CatalogParams{Category: qs.Get("category"), Level: qs.Get("level"), InstructorID: qs.Get("instructorId"),
		Q: qs.Get("q"), Sort: qs.Get("sort"), Limit: limit, Cursor: qs.Get("cursor")}, minPosition)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return page.reply(a.opts.MediaBaseURL)
}

// Roster answers a page of the learners of course courseID, in the order they enrolled. The
// caller decides first whether the reader may see it (MayTeach).
func (a *API) Roster(ctx context.Context, courseID string, limit int, cursor string) (Listing[documents.RosterEntry], error) {
	q := readstore.Query{Coll: documents.Rosters, Eq: []readstore.Field{{Name: "courseId", Value: courseID}},
		Sort: []readstore.Order{{Name: "enrolledAtN"}}}
	var err error
	if q.After, err = decodeCursor(cursor, "enrolled", 1); err != nil {
		return Listing[documents.RosterEntry]{}, err
	}
	return findPage(ctx, a.store, q, limit, "enrolled", func(e documents.RosterEntry) []any { return []any{e.EnrolledAtN} })
}

func (a *API) roster(r *http.Request) (readhttp.Reply, error) {
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
	l, err := a.Roster(r.Context(), id, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return readhttp.Reply{}, err
	}
	return pageReply(l, func(e documents.RosterEntry) documents.RosterItem { return e.RosterItem }, true)
}

func (a *API) mayTeach(r *http.Request, courseID string, mustExist bool) error {
	caller, err := access.Caller(r)
	if err != nil {
		return err
	}
	return a.MayTeach(r.Context(), caller, courseID, mustExist)
}

// MayTeach lets an instructor read the stats and roster of their own courses, and admins those
// of any. It answers 404 for a course that does not exist, except to an admin when mustExist is
// false: the document the admin reads answers for itself.
func (a *API) MayTeach(ctx context.Context, caller domain.Actor, courseID string, mustExist bool) error {
	if caller.Role == domain.Admin {
		if !mustExist {
			return nil
		}
		if _, err := a.store.Get(ctx, documents.CourseDetails, courseID); errors.Is(err, readstore.ErrNotFound) {
			return readhttp.NotFound("course")
		} else if err != nil {
			return err
		}
		return nil
	}
	_, c, err := a.course(ctx, caller, courseID)
	if err != nil {
		return err
	}
	return c.MayTeach(caller)
}
