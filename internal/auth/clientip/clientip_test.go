package clientip_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/edutrack/edutrack/internal/auth/clientip"
)

func TestClientIP(t *testing.T) {
	trusted, err := clientip.ParsePrefixes("10.0.0.0/8, 192.0.2.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	behindProxies := clientip.New(trusted...)
	direct := clientip.New()

	tests := []struct {
		name   string
		res    *clientip.Resolver
		remote string
		xff    []string
		want   string // "" for the zero Addr
	}{
		{name: "takes the peer without trusted proxies", res: direct, remote: "203.0.113.5:4711", want: "203.0.113.5"},
		{name: "ignores X-Forwarded-For without trusted proxies", res: direct, remote: "203.0.113.5:4711", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "ignores X-Forwarded-For spoofed by an untrusted peer", res: behindProxies, remote: "203.0.113.5:4711", xff: []string{"10.1.1.1, 198.51.100.1"}, want: "203.0.113.5"},
		{name: "takes the address a trusted proxy recorded", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "takes the right-most untrusted hop behind a chain of proxies", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"6.6.6.6, 198.51.100.1, 192.0.2.7, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "reads hops split over several header lines", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"6.6.6.6", "198.51.100.1", "10.9.9.9"}, want: "198.51.100.1"},
		{name: "does not let a client spoof through a trusted proxy", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"10.5.5.5, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "takes the peer when a trusted proxy sent no header", res: behindProxies, remote: "10.0.0.2:80", want: "10.0.0.2"},
		{name: "stops at an unreadable hop", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"198.51.100.1, unknown, 10.0.0.3"}, want: "10.0.0.3"},
		{name: "takes the left-most hop when every hop is trusted", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"10.0.0.4, 10.0.0.3"}, want: "10.0.0.4"},
		{name: "reads hops with ports", res: behindProxies, remote: "10.0.0.2:80", xff: []string{"[2001:db8::1]:443, 10.0.0.3:8080"}, want: "2001:db8::1"},
		{name: "trusts IPv6 proxies", res: behindProxies, remote: "[fd00::2]:80", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "unmaps IPv4 in IPv6 peers", res: behindProxies, remote: "[::ffff:10.0.0.2]:80", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "drops the IPv6 zone", res: direct, remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "gives the zero address for a socket without one", res: direct, remote: "@", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/courses", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := tt.res.ClientIP(r)
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Errorf("ClientIP = %v; want %v", got, want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := clientip.ParsePrefixes(" 10.0.0.0/8 ,192.0.2.7,, 2001:db8::/32 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(got) != len(want) {
		t.Fatalf("ParsePrefixes = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("prefix %d = %v; want %v", i, got[i], want[i])
		}
	}
	if got, err := clientip.ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf("ParsePrefixes(\"\") = %v, %v; want none", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1-10.0.0.9", "fe80::1%eth0"} {
		if _, err := clientip.ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) succeeded", bad)
		}
	}
}
