package readapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// FileLinks signs the short-lived links that module files are fetched from: the blob store's
// own signed URLs (S3), or EduTrack's signed route in front of a directory.
type FileLinks interface {
	DownloadURL(ctx context.Context, courseID, fileID string) (string, error)
}

// moduleFile answers a module file with a redirect to a link that fetches it, valid for a few
// minutes, to those access.MayReadFiles lets read it; everyone else gets 404.
func (a *API) moduleFile(w http.ResponseWriter, r *http.Request) {
	if err := a.redirectToFile(w, r); err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		problem.Write(w, r, a.log, err)
	}
}

func (a *API) redirectToFile(w http.ResponseWriter, r *http.Request) error {
	if err := readhttp.OnlyParams(r, "minPosition"); err != nil {
		return err
	}
	caller, err := access.Caller(r)
	if err != nil {
		return err
	}
	if err := a.consistency.WaitFor(r, documents.CoursesProjection, documents.LearnersProjection); err != nil {
		return err
	}
	url, err := a.FileURL(r.Context(), caller, chi.URLParam(r, "id"), chi.URLParam(r, "moduleId"), chi.URLParam(r, "fileId"))
	if err != nil {
		return err
	}
	// The link is the caller's alone and short-lived: no cache may keep or share it.
	w.Header().Set("Cache-Control", "private, no-store")
	http.Redirect(w, r, url, http.StatusFound)
	return nil
}

// FileURL answers a short-lived link to module file fileID of moduleID in courseID for caller,
// under the rules of its route: those access.MayReadFiles lets read it get the link, everyone
// else (auditors included) a 404. The caller waits for minPosition first.
func (a *API) FileURL(ctx context.Context, caller domain.Actor, courseID, moduleID, fileID string) (string, error) {
	if caller.Role == domain.Auditor || !domain.ValidID(courseID) || !domain.ValidID(moduleID) || !domain.ValidID(fileID) {
		return "", readhttp.NotFound("file")
	}
	e, err := a.Load(ctx, documents.CoursesProjection, documents.CourseDetails, courseID, "file")
	if err != nil {
		return "", err
	}
	course, err := access.DecodeCourse(e.Body)
	if err != nil {
		return "", err
	}
	enrollment := ""
	if caller.Role == domain.Learner {
		if enrollment, err = a.enrollment(ctx, courseID, caller.UserID); err != nil {
			return "", err
		}
	}
	if err := access.MayReadFiles(caller, course, enrollment); err != nil {
		return "", err
	}
	var d documents.CourseDetail
	if err := json.Unmarshal(e.Body, &d); err != nil {
		return "", fmt.Errorf("decode course %s: %w", courseID, err)
	}
	if !hasFile(d, moduleID, fileID) {
		return "", readhttp.NotFound("file")
	}
	if a.opts.Files == nil {
		return "", problem.New(http.StatusServiceUnavailable, "", "this process has no blob store to serve files from")
	}
	return a.opts.Files.DownloadURL(ctx, courseID, fileID)
}

// enrollment is the status of learnerID's enrollment in courseID as the roster shows it, or ""
// when they never enrolled.
func (a *API) enrollment(ctx context.Context, courseID, learnerID string) (string, error) {
	d, err := a.store.Get(ctx, documents.Rosters, documents.RosterID(courseID, learnerID))
	if errors.Is(err, readstore.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var entry documents.RosterEntry
	if err := json.Unmarshal(d.Body, &entry); err != nil {
		return "", fmt.Errorf("decode the roster entry of %s in %s: %w", learnerID, courseID, err)
	}
	return entry.Status, nil
}

func hasFile(d documents.CourseDetail, moduleID, fileID string) bool {
	for _, m := range d.Modules {
		if m.ID != moduleID {
			continue
		}
		for _, f := range m.Files {
			if f.ID == fileID {
				return true
			}
		}
	}
	return false
}
