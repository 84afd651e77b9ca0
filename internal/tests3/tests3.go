// Package tests3 runs a private S3-compatible server for tests: SeaweedFS's `weed server -s3`
// on free 127.0.0.1 ports, its data, logs and sockets in a temp dir, one access key drawn for
// it. One server serves a test binary (Main starts none until a test asks, and stops it after
// the run); each test gets its own bucket.
package tests3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region the buckets are in; SeaweedFS takes any, the signatures need one.
const Region = "us-east-1"

// Server is one running SeaweedFS and its data directory.
type Server struct {
	bin, dir             string
	ports                ports
	accessKey, secretKey string
	mu                   sync.Mutex
	stop                 func() // nil while stopped
	buckets              atomic.Int64
	transport            *http.Transport
	client               *s3.Client // of the server's own key, for buckets and the probe
}

// ports are the server's listeners: SeaweedFS puts each gRPC port 10000 above its HTTP one
// unless told, which may be taken or past 65535, so every one is chosen.
type ports struct {
	master, masterGRPC, volume, volumeGRPC, filer, filerGRPC, s3, s3GRPC int
}

// Bucket is an empty bucket of a test, and how to reach it.
type Bucket struct {
	Name, Endpoint, AccessKey, SecretKey string
}

// URL is the bucket as gocloud.dev's s3blob opens it: path-style requests to the server, whose
// keys the caller gives separately (they never travel in a URL).
func (b Bucket) URL() string {
	q := url.Values{"endpoint": {b.Endpoint}, "region": {Region}, "use_path_style": {"true"}}
	return "s3://" + b.Name + "?" + q.Encode()
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	sharedMu   sync.Mutex // guards stopping shared against a late start
	wrapped    bool       // Main runs the tests: it stops the shared server after them
)

// Main wraps a test binary's run so that the server NewBucket started is stopped after it:
// `func TestMain(m *testing.M) { goleak.VerifyTestMain(tests3.Main(m)) }`.
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
		shared.close()
	}
	return code
}

// NewBucket creates an empty bucket for t on the test binary's server, starting the server on
// first use. It fails the test (never skips) when the weed binary is missing: a missing engine
// must not turn a suite green.
func NewBucket(t testing.TB) Bucket {
	t.Helper()
	sharedMu.Lock()
	if !wrapped {
		sharedMu.Unlock()
		t.Fatal("tests3: wrap the package's TestMain with tests3.Main, which stops the server after the tests")
	}
	sharedOnce.Do(func() { shared, sharedErr = start() })
	sharedMu.Unlock()
	if sharedErr != nil {
		t.Fatalf("start SeaweedFS: %v", sharedErr)
	}
	return shared.NewBucket(t)
}

// Start starts a server of t's own, stopped when t ends: for a test that stops the server.
// Most tests want NewBucket.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("start SeaweedFS: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

// NewBucket creates an empty bucket in s, named after t.
func (s *Server) NewBucket(t testing.TB) Bucket {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", s.buckets.Add(1), nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"))
	name = strings.TrimRight(name[:min(len(name), 63)], "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return Bucket{Name: name, Endpoint: s.endpoint(), AccessKey: s.accessKey, SecretKey: s.secretKey}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// Stop stops the server now, as an outage of the store would look to its clients; Restart
// brings it back with its data.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Restart starts a stopped server again, on its ports and with its data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return
	}
	if err := s.run(); err != nil {
		t.Fatalf("restart SeaweedFS: %v", err)
	}
}

func (s *Server) endpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ports.s3))
}

func (s *Server) close() {
	s.Stop()
	s.transport.CloseIdleConnections()
	_ = os.RemoveAll(s.dir)
}

// binary finds weed: EDUTRACK_WEED, as .ci/deps builds it, else weed on PATH.
func binary() (string, error) {
	if p := os.Getenv("EDUTRACK_WEED"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p, nil
	}
	return "", errors.New("no SeaweedFS: set EDUTRACK_WEED to its weed binary, as `eval \"$(bash .ci/deps)\"` does (make test runs it), or put weed on PATH")
}

func start() (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	// Under /tmp with a short name: SeaweedFS's unix sockets go here, and their paths are short.
	dir, err := os.MkdirTemp("", "tests3-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, accessKey: "edutrack-" + token(4), secretKey: token(20), transport: &http.Transport{}}
	if err := s.writeConfig(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A free port is found by binding it and releasing it, so another process can take it before
	// SeaweedFS binds it; then the server fails, and we try other ports.
	for range 3 {
		if s.ports, err = freePorts(); err != nil {
			break
		}
		s.client = s3.New(s3.Options{Region: Region, BaseEndpoint: aws.String(s.endpoint()), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(s.accessKey, s.secretKey, ""), HTTPClient: &http.Client{Transport: s.transport}})
		if err = s.run(); err == nil {
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeConfig writes the S3 identities: the drawn key, with every right.
func (s *Server) writeConfig() error {
	type credential struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string       `json:"name"`
		Credentials []credential `json:"credentials"`
		Actions     []string     `json:"actions"`
	}
	b, err := json.Marshal(map[string][]identity{"identities": {{Name: "edutrack",
		Credentials: []credential{{AccessKey: s.accessKey, SecretKey: s.secretKey}},
		Actions:     []string{"Admin", "Read", "List", "Tagging", "Write"}}}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "s3.json"), b, 0o600)
}

// freePorts picks free ports below the range the kernel draws the local ports of outgoing
// connections from: weed connects between its parts while it still opens listeners, and a
// listener's port in that range is sometimes already the local end of one of its connections.
func freePorts() (ports, error) {
	low := ephemeralLow()
	var p [8]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < len(p); {
		if len(ls) > 1000 {
			return ports{}, errors.New("no free ports below the ephemeral range")
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(low-10000)))
		port := 10000 + int(n.Int64())
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		p[i] = port
		i++
	}
	return ports{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]}, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, 32768 where it does not say.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 11000 {
		return 32768
	}
	return n
}

// run starts weed and waits until an object can be written and read back: the S3 gateway
// answers before the volume server has joined the master, and until then writes fail.
func (s *Server) run() error {
	logPath := filepath.Join(s.dir, "weed.log")
	// An *os.File as stdout keeps exec from starting copy goroutines, which goleak would see.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	p := s.ports
	args := []string{"-logdir=" + s.dir, "server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.port=" + strconv.Itoa(p.master), "-master.port.grpc=" + strconv.Itoa(p.masterGRPC),
		// No reports to seaweedfs.com from a test. Each bucket is a collection that grows volumes of
		// its own, several at once: room for many, each small (they are sparse files until written).
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=100",
		// A restarted master that resumes its raft state took twice as long to take writes here
		// (34 s, not 17); the volume servers tell a fresh one what it needs.
		"-master.resumeState=false",
		"-volume.port=" + strconv.Itoa(p.volume), "-volume.port.grpc=" + strconv.Itoa(p.volumeGRPC), "-volume.preStopSeconds=0",
		"-filer", "-filer.port=" + strconv.Itoa(p.filer), "-filer.port.grpc=" + strconv.Itoa(p.filerGRPC),
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"),
		"-s3", "-s3.port=" + strconv.Itoa(p.s3), "-s3.port.grpc=" + strconv.Itoa(p.s3GRPC),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.localSocket=" + filepath.Join(s.dir, "s3.sock"),
		"-s3.config=" + filepath.Join(s.dir, "s3.json"), "-s3.autoCreateBucket=false",
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "TMPDIR="+s.dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	// Killed, as a crash would stop it: weed's orderly stop takes some 15 s, and what it
	// acknowledged is in the files already.
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		s.transport.CloseIdleConnections()
		// weed puts a unix socket beside each gRPC port in /tmp whatever TMPDIR says, and leaves
		// it there when killed.
		for name, port := range map[string]int{"master": p.masterGRPC, "volume": p.volumeGRPC, "filer": p.filerGRPC, "s3": p.s3GRPC} {
			_ = os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, port))
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.probe()
		if err == nil {
			s.stop = stop
			return nil
		}
		select {
		case <-exited:
			return errors.New("weed exited at start: " + lastLines(logPath))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("SeaweedFS took no object within 60s: %v; log: %s", err, lastLines(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probe writes an object to a bucket of its own and reads it back.
func (s *Server) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const bucket = "tests3-probe"
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			return err
		}
	}
	body := []byte("probe")
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("probe"), Body: bytes.NewReader(body)}); err != nil {
		return err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("probe")})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(out.Body); err != nil {
		return err
	}
	if !bytes.Equal(got.Bytes(), body) {
		return fmt.Errorf("read back %q, wrote %q", got.Bytes(), body)
	}
	return nil
}

func lastLines(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}
