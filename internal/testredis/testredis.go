// Package testredis starts a throwaway redis-server for tests (its own port, its own temp dir, no
// persistence, stopped when the test ends), and a proxy in front of one that can hang like a dead one.
package testredis

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Start runs a redis-server on a free 127.0.0.1 port and returns its address once it answers
// PING. The server keeps nothing on disk and is stopped in t.Cleanup. It fails the test (never
// skips) when redis-server is not on PATH: a missing engine must not turn a suite green.
func Start(t testing.TB) (addr string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not on PATH; the tests run a real Redis, install it (apt-get install redis-server): %v", err)
	}
	dir := t.TempDir()
	// The free port is found by binding :0 and releasing it, so another process can take it
	// before redis-server binds; then the server exits at once and we try another port.
	var lastErr error
	for range 5 {
		addr, lastErr = start(t, bin, dir)
		if lastErr == nil {
			return addr
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return ""
}

func start(t testing.TB, bin, dir string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	// An *os.File as stdout keeps exec from starting copy goroutines, which goleak would see.
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(addr, cmd.Process.Pid)
		if err == nil {
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case <-exited:
			return "", errors.New("redis-server exited at start: " + lastLines(logPath))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", errors.New("redis-server did not answer PING within 10s: " + err.Error() + "; log: " + lastLines(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping speaks just enough RESP to check readiness, so this package needs no Redis client. It also
// checks that the server answering is the one we started: if another test's server took the port
// first, ours exits, and without the pid check we would hand out (and later stop) theirs.
func ping(addr string, pid int) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// A loading server answers -LOADING; keep waiting.
		return errors.New("PING answered " + strings.TrimSpace(line))
	}
	header, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(header, "$")))
	if err != nil {
		return errors.New("INFO answered " + strings.TrimSpace(header))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	if !strings.Contains(string(info), "\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return errors.New("another redis-server answers on " + addr)
	}
	return nil
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
