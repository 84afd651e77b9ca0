// Package clientip finds the address of the client behind a request: the connection's peer,
// or, when that peer is a trusted proxy, the address the proxies recorded in X-Forwarded-For.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds client addresses. The zero value trusts no proxy. It is safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For only from peers inside trusted.
func New(trusted ...netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, p.Masked())
	}
	return r
}

// ParsePrefixes reads a comma-separated list of CIDRs or single addresses, such as
// "10.0.0.0/8, 192.0.2.7", as the trusted proxies are configured.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("clientip: %q is neither a CIDR nor an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientIP returns the client's address, or the zero Addr when the connection has none (a Unix
// socket). Behind trusted proxies it is the right-most X-Forwarded-For address that is not a
// trusted proxy: everything left of it was written by the client and can be made up, so a
// client cannot pick its address by sending the header itself.
func (res *Resolver) ClientIP(r *http.Request) netip.Addr {
	peer := parse(r.RemoteAddr)
	if !peer.IsValid() || !res.isTrusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parse(strings.TrimSpace(hops[i]))
		if !hop.IsValid() {
			// A hop we cannot read ends the chain we can vouch for: the last proxy is the
			// best we know, and it cannot be forged.
			return client
		}
		client = hop
		if !res.isTrusted(hop) {
			return hop
		}
	}
	return client
}

func (res *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parse reads an address with or without a port (proxies write both forms) and drops what
// would make one client look like two: an IPv6 zone and the IPv4-in-IPv6 mapping.
func parse(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(s)
		if splitErr != nil {
			return netip.Addr{}
		}
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}
		}
	}
	return a.WithZone("").Unmap()
}
