package jobsapi

import (
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
	"riverqueue.com/riverui/uiendpoints"

	"github.com/edutrack/edutrack/reactors"
)

// UIPath is where River's web UI is served: its page, its assets and its API (UIPath+"api/").
const UIPath = "/admin/jobs/"

// NewUI returns River's web UI (riverqueue.com/riverui) over the queue's River client
// (reactors.Queue.RiverClient), on SQLite or PostgreSQL alike, serving under UIPath. It must be
// started (Start) before it serves, and stops when Start's context ends. The caller mounts it
// at UIPath+"*" behind its own access control: the UI checks no one, and it retries, cancels
// and deletes jobs and pauses queues.
func NewUI(client any, log *slog.Logger) (*riverui.Handler, error) {
	var endpoints uiendpoints.Bundle
	switch c := client.(type) {
	case *river.Client[*sql.Tx]:
		endpoints = riverui.NewEndpoints(c, nil)
	case *river.Client[pgx.Tx]:
		endpoints = riverui.NewEndpoints(c, nil)
	default:
		return nil, fmt.Errorf("jobsapi: the jobs UI does not know River's client %T", client)
	}
	// Job arguments hold ids only, but a list without them is easier to read.
	return riverui.NewHandler(&riverui.HandlerOpts{Endpoints: endpoints, Logger: reactors.LibraryLog(log, "riverui"), Prefix: UIPath,
		JobListHideArgsByDefault: true})
}
