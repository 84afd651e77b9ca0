package testredis_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStart(t *testing.T) {
	var addr string
	t.Run("returns_a_server_that_answers", func(t *testing.T) {
		addr = testredis.Start(t)
		if got := roundTrip(t, addr, "SET k v\r\nGET k\r\nCONFIG GET save\r\n", 8); got != "+OK\r\n$1\r\nv\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n" {
			t.Fatalf("replies = %q; want OK, v, and an empty save setting", got)
		}
	})
	t.Run("stops_the_server_when_the_test_ends", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections after its test ended", addr)
		}
	})
	t.Run("gives_each_test_its_own_server", func(t *testing.T) {
		a, b := testredis.Start(t), testredis.Start(t)
		if a == b {
			t.Fatalf("both servers at %s", a)
		}
		roundTrip(t, a, "SET k a\r\n", 1)
		if got := roundTrip(t, b, "EXISTS k\r\n", 1); got != ":0\r\n" {
			t.Fatalf("second server sees the first one's key: %q", got)
		}
	})
}

// roundTrip sends inline commands and returns the first n reply lines.
func roundTrip(t *testing.T, addr, cmds string, n int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(cmds)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var out string
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read reply from %s: %v (so far %q)", addr, err, out)
		}
		out += line
	}
	return out
}

func TestProxy(t *testing.T) {
	addr := testredis.Start(t)
	p := testredis.NewProxy(t, addr)
	roundTrip(t, p.Addr(), "SET k before\r\n", 1)

	t.Run("relays_to_the_server", func(t *testing.T) {
		if got := roundTrip(t, p.Addr(), "GET k\r\n", 2); got != "$6\r\nbefore\r\n" {
			t.Fatalf("reply through the proxy = %q; want before", got)
		}
	})
	t.Run("answers_nothing_while_it_hangs_and_drops_what_it_relayed", func(t *testing.T) {
		relayed, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer relayed.Close()
		roundTripOn(t, relayed, "PING\r\n")
		p.Hang()
		_ = relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(relayed).ReadString('\n'); err == nil {
			t.Error("a connection relayed before the hang still reads")
		}
		held, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			t.Fatalf("a hung proxy refuses connections (it should take them and answer nothing): %v", err)
		}
		defer held.Close()
		if _, err := held.Write([]byte("GET k\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = held.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if line, err := bufio.NewReader(held).ReadString('\n'); err == nil {
			t.Errorf("a hung proxy answered %q", line)
		}
	})
	t.Run("relays_again_once_restored_with_the_data_kept", func(t *testing.T) {
		p.Restore()
		if got := roundTrip(t, p.Addr(), "GET k\r\n", 2); got != "$6\r\nbefore\r\n" {
			t.Fatalf("reply after the restore = %q; want the value set before the hang", got)
		}
	})
}

func roundTripOn(t *testing.T, conn net.Conn, cmds string) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(cmds)); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Time{})
}
