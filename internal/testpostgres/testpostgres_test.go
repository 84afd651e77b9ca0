package testpostgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testpostgres"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpostgres.Main(m)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewDatabase(t *testing.T) {
	t.Run("gives each test a database of its own in one cluster", func(t *testing.T) {
		a, b := testpostgres.NewDatabase(t), testpostgres.NewDatabase(t)
		if a == b {
			t.Fatalf("both tests got %s", a)
		}
		ctx := context.Background()
		if _, err := connect(t, a).Exec(ctx, `CREATE TABLE k (v int)`); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := connect(t, b).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'k'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the second database sees the first one's table: %d, %v", n, err)
		}
	})
	t.Run("listens on loopback only, without fsync", func(t *testing.T) {
		conn := connect(t, testpostgres.NewDatabase(t))
		for setting, want := range map[string]string{"listen_addresses": "127.0.0.1", "fsync": "off"} {
			var got string
			if err := conn.QueryRow(context.Background(), "SHOW "+setting).Scan(&got); err != nil || got != want {
				t.Errorf("%s = %q, %v; want %q", setting, got, err, want)
			}
		}
	})
}

func TestStart(t *testing.T) {
	var url string
	t.Run("returns a cluster of the test's own", func(t *testing.T) {
		url = testpostgres.Start(t).NewDatabase(t)
		connect(t, url)
	})
	t.Run("stops it when the test ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, url); err == nil {
			conn.Close(ctx)
			t.Fatal("the cluster still answers after its test ended")
		}
	})
}
