package reactors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/edutrack/edutrack/domain"
)

// ErrJobNotFound means no job has the id asked for: it never existed, or was deleted once its
// retention ran out.
var ErrJobNotFound = domain.Errorf(domain.NotFound, "no job has this id")

// Job is a job as an operator sees it.
type Job struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`
	Queue string `json:"queue"`
	// State is River's: available, scheduled, running, retryable, completed, discarded,
	// cancelled, or pending.
	State       string `json:"state"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"maxAttempts"`
	// Args are the job's arguments, which name the event that triggered it.
	Args        json.RawMessage `json:"args"`
	Errors      []JobError      `json:"errors"`
	AttemptedBy []string        `json:"attemptedBy"`
	CreatedAt   time.Time       `json:"createdAt"`
	ScheduledAt time.Time       `json:"scheduledAt"`
	AttemptedAt *time.Time      `json:"attemptedAt,omitempty"`
	FinalizedAt *time.Time      `json:"finalizedAt,omitempty"`
}

// JobError is how one attempt of a job failed.
type JobError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// JobFilter narrows a listing of jobs. Empty fields match every job.
type JobFilter struct {
	State string
	Kind  string
	// Limit is how many jobs at most, 1 to 1000 (default 100).
	Limit int
}

// MaxJobs is the most jobs one listing returns.
const MaxJobs = 1000

// JobStates are the states a job can be in, for a filter.
func JobStates() []string {
	var out []string
	for _, s := range rivertype.JobStates() {
		out = append(out, string(s))
	}
	return out
}

// List lists the jobs f matches, newest first.
func (q *Queue) List(ctx context.Context, f JobFilter) ([]Job, error) {
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > MaxJobs {
		return nil, domain.Errorf(domain.Invalid, "limit must be between 1 and %d", MaxJobs)
	}
	params := river.NewJobListParams().First(limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if f.State != "" {
		if !slices.Contains(JobStates(), f.State) {
			return nil, domain.Errorf(domain.Invalid, "state must be one of %v", JobStates())
		}
		params = params.States(rivertype.JobState(f.State))
	} else {
		params = params.States(rivertype.JobStates()...)
	}
	if f.Kind != "" {
		params = params.Kinds(f.Kind)
	}
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]Job, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		out = append(out, jobOf(row))
	}
	return out, nil
}

// ErrJobCompleted refuses to run a completed job again: its work is done (an email sent), and
// doing it again is not a retry.
var ErrJobCompleted = domain.Errorf(domain.Conflict, "the job completed; it is not run again")

// Retry makes a job available at once: a discarded or cancelled one too, with one more attempt
// if it had used them all. A running job is left as it is; a completed one is refused with
// ErrJobCompleted.
func (q *Queue) Retry(ctx context.Context, id int64) (Job, error) {
	row, err := q.client.JobGet(ctx, id)
	if err == nil && row.State == rivertype.JobStateCompleted {
		return Job{}, ErrJobCompleted
	}
	if err == nil {
		row, err = q.client.JobRetry(ctx, id)
	}
	return q.answer(row, err, "retry")
}

// Cancel stops a job from running again; a running one is asked to stop, and ends cancelled
// unless it finishes first. A finished job is left as it is.
func (q *Queue) Cancel(ctx context.Context, id int64) (Job, error) {
	row, err := q.client.JobCancel(ctx, id)
	return q.answer(row, err, "cancel")
}

func (q *Queue) answer(row *rivertype.JobRow, err error, doing string) (Job, error) {
	if errors.Is(err, rivertype.ErrNotFound) {
		return Job{}, ErrJobNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("%s job: %w", doing, err)
	}
	return jobOf(row), nil
}

func jobOf(row *rivertype.JobRow) Job {
	j := Job{ID: row.ID, Kind: row.Kind, Queue: row.Queue, State: string(row.State), Attempt: row.Attempt,
		MaxAttempts: row.MaxAttempts, Args: row.EncodedArgs, AttemptedBy: row.AttemptedBy, CreatedAt: row.CreatedAt,
		ScheduledAt: row.ScheduledAt, AttemptedAt: row.AttemptedAt, FinalizedAt: row.FinalizedAt, Errors: []JobError{}}
	if j.AttemptedBy == nil {
		j.AttemptedBy = []string{}
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, JobError{Attempt: e.Attempt, At: e.At, Error: e.Error})
	}
	return j
}
