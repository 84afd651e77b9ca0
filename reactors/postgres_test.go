package reactors_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/reactors"
)

func TestThePostgresPoolIsLargeEnoughUnlessTheURLSaysOtherwise(t *testing.T) {
	t.Parallel()
	url := testpostgres.NewDatabase(t)
	opts := reactors.QueueOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		url  string
		want int32
	}{{url, 20}, {url + "&pool_max_conns=3", 3}} {
		q, err := reactors.OpenPostgresQueue(context.Background(), tc.url, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.PoolSize(); got != tc.want {
			t.Errorf("%s: a pool of %d; want %d", tc.url, got, tc.want)
		}
		q.Close()
	}
	if _, err := reactors.OpenPostgresQueue(context.Background(), "postgres://u:s3cret@[::1", opts); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a URL that does not parse: %v; want an error without its password", err)
	}
}
