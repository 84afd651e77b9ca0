package testredis

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy relays TCP connections to a server, and can hang like a server that stopped answering or
// a network that dropped: then it accepts connections but relays nothing, so clients wait out
// their timeouts. Unlike stopping the server, it keeps the server's data for when it answers
// again, which is when a cache that trusted its old entries would show.
type Proxy struct {
	target string
	l      net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	hung   bool
	closed bool
	conns  map[net.Conn]bool // every open connection, relayed (true) or held unanswered (false)
}

// NewProxy listens on a free 127.0.0.1 port and relays to target until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, l: l, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Hang drops the connections it relays and answers nothing from then on: clients that dial
// again are accepted and held.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
	for c, relayed := range p.conns {
		if relayed {
			c.Close()
		}
	}
}

// Restore relays again. The connections held while it hung are closed, so their clients dial
// again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = false
	for c, relayed := range p.conns {
		if !relayed {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		switch {
		case p.closed:
			c.Close()
		case p.hung:
			p.conns[c] = false
		default:
			p.wg.Add(1)
			go p.relay(c)
		}
		p.mu.Unlock()
	}
}

func (p *Proxy) relay(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.closed || p.hung {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	// One side is gone: closing both ends the other copy.
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.l.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
