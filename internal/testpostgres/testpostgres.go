// Package testpostgres runs a private PostgreSQL cluster for tests: initdb into a temp dir, the
// server on a free 127.0.0.1 port with its socket in that dir, fsync off, stopped and removed
// at the end. It never uses a server the machine may already run. One cluster serves a test
// binary (Main starts none until a test asks, and stops it after the run); each test gets its
// own database.
package testpostgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the cluster's one role; its password is drawn for each cluster, so another user
// of the machine cannot reach the cluster in the while it listens.
const superuser = "edutrack"

// Cluster is one running PostgreSQL server and its data directory.
type Cluster struct {
	dir      string // data, socket and log; removed by stop
	port     int
	password string
	stop     func()
	dbs      atomic.Int64
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	sharedMu   sync.Mutex // guards stopping shared against a late start
	wrapped    bool       // Main runs the tests: it stops the shared cluster after them
)

// Main wraps a test binary's run so that the cluster NewDatabase started is stopped after it:
// `func TestMain(m *testing.M) { goleak.VerifyTestMain(testpostgres.Main(m)) }`.
func Main(m interface{ Run() int }) interface{ Run() int } { return mainRun{m} }

type mainRun struct{ m interface{ Run() int } }

func (r mainRun) Run() int {
	sharedMu.Lock()
	wrapped = true
	sharedMu.Unlock()
	code := r.m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.stop()
	}
	return code
}

// NewDatabase creates an empty database for t in the test binary's cluster, starting the
// cluster on first use, and returns its URL. It fails the test (never skips) when PostgreSQL is
// not installed: a missing engine must not turn a suite green.
func NewDatabase(t testing.TB) string {
	t.Helper()
	sharedMu.Lock()
	if !wrapped {
		sharedMu.Unlock()
		t.Fatal("testpostgres: wrap the package's TestMain with testpostgres.Main, which stops the cluster after the tests")
	}
	sharedOnce.Do(func() { shared, sharedErr = start() })
	sharedMu.Unlock()
	if sharedErr != nil {
		t.Fatalf("start PostgreSQL: %v", sharedErr)
	}
	return shared.NewDatabase(t)
}

// Start starts a cluster of t's own, stopped when t ends: for a test that stops or breaks the
// server. Most tests want NewDatabase.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

// Stop stops the server now, as a crash of the database would look to its clients.
func (c *Cluster) Stop() { c.stop() }

// NewDatabase creates an empty database in c, named after t, and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.dbs.Add(1), nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	name = name[:min(len(name), 63)]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return c.url(name)
}

var nonWord = regexp.MustCompile(`[^a-z0-9_]+`)

func (c *Cluster) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(superuser, c.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// binDir finds PostgreSQL's server programs: EDUTRACK_PG_BIN, then initdb on PATH, then
// Debian's /usr/lib/postgresql/<version>/bin, the newest first.
func binDir() (string, error) {
	if dir := os.Getenv("EDUTRACK_PG_BIN"); dir != "" {
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Debian links initdb onto PATH without postgres; the real directory has both.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb is neither on PATH nor under /usr/lib/postgresql/*/bin; " +
		"the tests run a real PostgreSQL: .ci/deps installs it (apt-get install postgresql), or set EDUTRACK_PG_BIN")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverUser()
	if err != nil {
		return nil, err
	}
	// Short and under /tmp: the socket's path must fit in 107 bytes, and when the server runs as
	// another user every parent must let it through.
	base := os.TempDir()
	if owner != nil {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "edutrack-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, password: randomHex()}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if owner != nil {
		if err := os.Chown(dir, int(owner.Uid), int(owner.Gid)); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if owner != nil {
		if err := os.Chown(pwfile, int(owner.Uid), int(owner.Gid)); err != nil {
			return nil, err
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", superuser,
		"--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = sysProcAttr(owner)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// The free port is found by binding :0 and releasing it, so another process can take it
	// first; then the server exits at once and we try another.
	for range 5 {
		if err = c.run(bin, owner); err == nil {
			ok = true
			return c, nil
		}
	}
	return nil, err
}

// serverUser is who runs the server: this process's user, or, for root, which initdb refuses,
// the postgres user Debian's package creates (else nobody).
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user to run PostgreSQL as")
}

func (c *Cluster) run(bin string, owner *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.dir, "server-"+strconv.Itoa(port)+".log")
	// An *os.File as stdout keeps exec from starting copy goroutines, which goleak would see.
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// The server runs as this process's child rather than daemonised by pg_ctl, so that it dies
	// with a test binary that is killed before its cleanups run.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(owner)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// SIGINT is PostgreSQL's fast shutdown: it disconnects clients and stops.
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			os.RemoveAll(c.dir)
		})
	}
	c.port = port
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.ping()
		if err == nil {
			c.stop = stop
			return nil
		}
		select {
		case <-exited:
			return errors.New("postgres exited at start: " + lastLines(logPath))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not answer within 30s: %v; log: %s", err, lastLines(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping connects with the cluster's password, which only the server we started knows: another
// server that took the port first cannot pass for ours.
func (c *Cluster) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
