package jobsapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/jobsapi"
)

func TestUI(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("serves_its_page_and_api_under_its_path_on_SQLite", func(t *testing.T) {
		q, err := reactors.OpenQueue(t.Context(), filepath.Join(t.TempDir(), "jobs.db"), reactors.QueueOptions{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		ui, err := jobsapi.NewUI(q.RiverClient(), log)
		if err != nil {
			t.Fatal(err)
		}
		if err := ui.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		for target, want := range map[string]string{
			jobsapi.UIPath: "<html",
			jobsapi.UIPath + "api/jobs?state=available": `{"data":[]}`,
		} {
			rec := httptest.NewRecorder()
			ui.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
				t.Errorf("GET %s: %d %q; want 200 with %q", target, rec.Code, rec.Body, want)
			}
		}
	})
	t.Run("refuses_a_client_it_does_not_know", func(t *testing.T) {
		if _, err := jobsapi.NewUI("not a client", log); err == nil {
			t.Error("no error")
		}
	})
}
