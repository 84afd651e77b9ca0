package readapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/problem"
	"github.com/edutrack/edutrack/readmodel"
	"github.com/edutrack/edutrack/readstore"
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
	ActingUser    string          `json:"actingUser"`
}

// HistoryRoutes mounts the learner history, read from log, on r. Only a process that has the
// event log serves it.
func (a *API) HistoryRoutes(r chi.Router, log Log) {
	r.Get("/v1/learners/{id}/history", a.handle(func(r *http.Request) (reply, error) { return a.history(r, log) }))
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

func (a *API) history(r *http.Request, log Log) (reply, error) {
	qs := r.URL.Query()
	for name := range qs {
		switch name {
		case "limit", "cursor", "minPosition":
		default:
			return reply{}, problem.New(http.StatusBadRequest, name, "unknown query parameter")
		}
	}
	if raw := qs.Get("minPosition"); raw != "" {
		// The log is always current; the parameter is accepted for symmetry and checked.
		if _, err := strconv.ParseUint(raw, 10, 64); err != nil {
			return reply{}, problem.New(http.StatusBadRequest, "minPosition", "must be a non-negative integer")
		}
	}
	limit, err := limitOf(r)
	if err != nil {
		return reply{}, err
	}
	from := uint64(1)
	if raw := qs.Get("cursor"); raw != "" {
		v, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || v == 0 {
			return reply{}, problem.New(http.StatusBadRequest, "cursor", "is not a cursor this listing returned")
		}
		from = v
	}
	id := chi.URLParam(r, "id")
	// A learner is known by their dashboard, which registration creates.
	if _, err := a.store.Get(r.Context(), readmodel.Dashboards, id); errors.Is(err, readstore.ErrNotFound) {
		return reply{}, problem.New(http.StatusNotFound, "", "learner not found")
	} else if err != nil {
		return reply{}, err
	}
	events, err := log.ReadStream(r.Context(), learner.StreamPrefix+id, from, limit+1)
	if err != nil {
		return reply{}, err
	}
	p := page[HistoryEvent]{Items: make([]HistoryEvent, 0, min(len(events), limit))}
	for i, e := range events {
		if i == limit {
			p.NextCursor = strconv.FormatUint(e.Version, 10)
			break
		}
		name, v := splitType(e.Type)
		p.Items = append(p.Items, HistoryEvent{Type: name, SchemaVersion: v, StreamVersion: e.Version, Position: e.Position,
			RecordedAt: e.RecordedAt, Data: json.RawMessage(e.Data), CorrelationID: e.Metadata.CorrelationID,
			CausationID: e.Metadata.CausationID, ActingUser: e.Metadata.UserID})
	}
	body, err := json.Marshal(p)
	if err != nil {
		return reply{}, err
	}
	etag := `"h0"`
	if n := len(p.Items); n > 0 {
		etag = `"h` + strconv.FormatUint(p.Items[n-1].Position, 10) + `-` + strconv.Itoa(n) + `"`
	}
	return reply{body: body, etag: etag, private: true}, nil
}
