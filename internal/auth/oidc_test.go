package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
)

// Generating RSA keys is slow under -race; the tests share two.
var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

// clock is a settable time for the verifier and its key cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// provider is an OpenID Connect provider serving discovery and a key set over TLS.
type provider struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	issuer    string // what discovery claims; the server's URL unless a test changes it
	jwksURI   string
	down      bool
	jwksFetch int
}

func newProvider(t *testing.T, keys ...jose.JSONWebKey) *provider {
	t.Helper()
	p := &provider{keys: keys}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.issuer, p.jwksURI = p.srv.URL, p.srv.URL+"/keys"
	return p
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]string{"issuer": p.issuer, "jwks_uri": p.jwksURI})
	case "/keys":
		p.jwksFetch++
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	default:
		http.NotFound(w, r)
	}
}

func (p *provider) set(f func(p *provider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *provider) fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jwksFetch
}

func (p *provider) verifier(t *testing.T, c *clock) *Verifier {
	t.Helper()
	v, err := NewOIDCVerifier(context.Background(), slog.New(slog.DiscardHandler), Options{
		Issuer: p.srv.URL, Audience: "edutrack-api", Now: c.Now, HTTPClient: p.srv.Client(),
		MinRefreshInterval: time.Minute, MaxKeyAge: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func pubJWK(key any, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// oidcClaims are a valid token's claims from p at now.
func oidcClaims(p *provider, now time.Time) jwt.MapClaims {
	c := claimsAt(now)
	c["iss"], c["aud"] = p.srv.URL, "edutrack-api"
	return c
}

func TestOIDCVerifier(t *testing.T) {
	rsaKey, stranger := rsaKeys()[0], rsaKeys()[1]
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newProvider(t,
		pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"),
		pubJWK(&ecKey.PublicKey, "ec-1", "ES256"),
		pubJWK(&stranger.PublicKey, "pss-1", "PS256"),
	)
	c := &clock{now: t0}
	v := p.verifier(t, c)
	claims := oidcClaims(p, t0)
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	wrongIssuer := oidcClaims(p, t0)
	wrongIssuer["iss"] = "https://elsewhere.example"
	learner := domain.Actor{UserID: "u-ada", Role: domain.Learner}

	tests := []struct {
		name  string
		token string
		want  domain.Actor // zero when refused
	}{
		{"accepts_RS256_from_the_provider", sign(t, jwt.SigningMethodRS256, rsaKey, claims, map[string]any{"kid": "rsa-1"}), learner},
		{"accepts_ES256_from_the_provider", sign(t, jwt.SigningMethodES256, ecKey, claims, map[string]any{"kid": "ec-1"}), learner},
		{"refuses_HS256_keyed_with_the_provider's_public_key_PEM", sign(t, jwt.SigningMethodHS256, pubPEM, claims, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_HS256_keyed_with_the_provider's_public_key_DER", sign(t, jwt.SigningMethodHS256, der, claims, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_alg_none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_RS384_from_the_provider's_key", sign(t, jwt.SigningMethodRS384, rsaKey, claims, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_a_token_without_kid", sign(t, jwt.SigningMethodRS256, rsaKey, claims, nil), domain.Actor{}},
		{"refuses_a_kid_naming_a_key_of_another_type", sign(t, jwt.SigningMethodRS256, rsaKey, claims, map[string]any{"kid": "ec-1"}), domain.Actor{}},
		{"refuses_RS256_under_a_key_pinned_to_PS256", sign(t, jwt.SigningMethodRS256, stranger, claims, map[string]any{"kid": "pss-1"}), domain.Actor{}},
		{"refuses_a_token_signed_by_a_key_the_provider_does_not_publish", sign(t, jwt.SigningMethodRS256, stranger, claims, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_another_issuer", sign(t, jwt.SigningMethodRS256, rsaKey, wrongIssuer, map[string]any{"kid": "rsa-1"}), domain.Actor{}},
		{"refuses_the_default_audience", sign(t, jwt.SigningMethodRS256, rsaKey, claimsAt(t0), map[string]any{"kid": "rsa-1"}), domain.Actor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if tt.want == (domain.Actor{}) {
				if err == nil {
					t.Fatalf("Verify accepted the token as %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOIDCKeyRefresh(t *testing.T) {
	rsaKey, rotated := rsaKeys()[0], rsaKeys()[1]
	tokenBy := func(t *testing.T, p *provider, c *clock, key *rsa.PrivateKey, kid string) string {
		return sign(t, jwt.SigningMethodRS256, key, oidcClaims(p, c.Now()), map[string]any{"kid": kid})
	}

	t.Run("fetches_the_keys_again_for_a_kid_it_lacks", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		c.advance(2 * time.Minute) // past MinRefreshInterval since the fetch at start
		p.set(func(p *provider) { p.keys = append(p.keys, pubJWK(&rotated.PublicKey, "rsa-2", "")) })
		if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rotated, "rsa-2")); err != nil {
			t.Fatalf("Verify with the rotated-in key: %v", err)
		}
		if n := p.fetches(); n != 2 {
			t.Fatalf("%d key set fetches; want 2 (start, then the unknown kid)", n)
		}
	})

	t.Run("fetches_for_unknown_kids_at_most_once_per_interval", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		c.advance(2 * time.Minute)
		for i := range 5 {
			if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rotated, "forged-"+string(rune('a'+i)))); err == nil {
				t.Fatal("accepted a token with a kid the provider does not publish")
			}
		}
		if n := p.fetches(); n != 2 {
			t.Fatalf("%d key set fetches after 5 unknown kids; want 2 (start, then one)", n)
		}
		c.advance(61 * time.Second)
		v.Verify(context.Background(), tokenBy(t, p, c, rotated, "forged-z"))
		if n := p.fetches(); n != 3 {
			t.Fatalf("%d key set fetches once the interval passed; want 3", n)
		}
	})

	t.Run("stops_accepting_a_withdrawn_key_once_the_keys_are_old", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"), pubJWK(&rotated.PublicKey, "rsa-2", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		p.set(func(p *provider) { p.keys = p.keys[1:] })
		if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rsaKey, "rsa-1")); err != nil {
			t.Fatalf("Verify while the keys are fresh: %v", err)
		}
		c.advance(61 * time.Minute)
		if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rsaKey, "rsa-1")); err == nil {
			t.Fatal("still accepted the withdrawn key after MaxKeyAge")
		}
		if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rotated, "rsa-2")); err != nil {
			t.Fatalf("Verify with the remaining key: %v", err)
		}
	})

	t.Run("keeps_its_keys_while_the_provider_is_down", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		p.set(func(p *provider) { p.down = true })
		c.advance(2 * time.Hour)
		if _, err := v.Verify(context.Background(), tokenBy(t, p, c, rsaKey, "rsa-1")); err != nil {
			t.Fatalf("Verify while the provider is down: %v", err)
		}
	})
}

func TestNewOIDCVerifier(t *testing.T) {
	rsaKey := rsaKeys()[0]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func(p *provider)
		issuer  func(p *provider) string
		wantErr string
	}{
		{name: "refuses_discovery_for_another_issuer", change: func(p *provider) { p.issuer = "https://elsewhere.example" }, wantErr: "names issuer"},
		{name: "refuses_an_issuer_with_a_trailing_slash_discovery_does_not_name", issuer: func(p *provider) string { return p.srv.URL + "/" }, wantErr: "names issuer"},
		{name: "refuses_a_plain_http_issuer", issuer: func(p *provider) string { return strings.Replace(p.srv.URL, "https", "http", 1) }, wantErr: "not an https URL"},
		{name: "refuses_an_empty_issuer", issuer: func(*provider) string { return "" }, wantErr: "not an https URL"},
		{name: "refuses_a_plain_http_jwks_uri", change: func(p *provider) { p.jwksURI = strings.Replace(p.jwksURI, "https", "http", 1) }, wantErr: "jwks_uri"},
		{name: "refuses_a_provider_that_is_down", change: func(p *provider) { p.down = true }, wantErr: "503"},
		{name: "refuses_a_key_set_without_a_usable_key", change: func(p *provider) { p.keys = []jose.JSONWebKey{pubJWK(&small.PublicKey, "small", "RS256")} }, wantErr: "no usable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
			if tt.change != nil {
				p.set(tt.change)
			}
			issuer := p.srv.URL
			if tt.issuer != nil {
				issuer = tt.issuer(p)
			}
			_, err := NewOIDCVerifier(context.Background(), slog.New(slog.DiscardHandler), Options{Issuer: issuer, HTTPClient: p.srv.Client()})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewOIDCVerifier: %v; want an error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("refuses_a_nil_logger", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		if _, err := NewOIDCVerifier(context.Background(), nil, Options{Issuer: p.srv.URL, HTTPClient: p.srv.Client()}); err == nil {
			t.Fatal("NewOIDCVerifier accepted a nil logger")
		}
	})
}

func TestParseJWKS(t *testing.T) {
	rsaKey := rsaKeys()[0]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	keys := []jose.JSONWebKey{
		pubJWK(&rsaKey.PublicKey, "good-rsa", "RS256"),
		pubJWK(p256.Public(), "good-ec", ""),
		pubJWK(&small.PublicKey, "weak-rsa", "RS256"),
		pubJWK(p384.Public(), "p384", "ES384"),
		{Key: &rsaKey.PublicKey, KeyID: "for-encryption", Use: "enc"},
		{Key: []byte("a shared secret that is long enough"), KeyID: "symmetric"},
		pubJWK(rsaKey, "private", "RS256"),
		pubJWK(&rsaKey.PublicKey, "", "RS256"),
		pubJWK(&rsaKey.PublicKey, "twice", "RS256"),
		pubJWK(p256.Public(), "twice", "ES256"),
		pubJWK(&rsaKey.PublicKey, "twice", "RS256"),
	}
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	// A key type nobody knows must not spoil the rest of the set.
	body = []byte(strings.Replace(string(body), `"keys":[`, `"keys":[{"kty":"future","kid":"x"},`, 1))
	got, err := parseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for kid := range got {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	if diff := cmp.Diff([]string{"good-ec", "good-rsa"}, kids); diff != "" {
		t.Errorf("usable kids (-want +got):\n%s", diff)
	}
	for _, bad := range []string{``, `null`, `{"keys":[]}`, `{"keys":"no"}`, `[]`} {
		if _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded", bad)
		}
	}
}

func TestHTTPSOnly(t *testing.T) {
	for target, wantErr := range map[string]bool{"https://login.school.example/keys": false, "http://login.school.example/keys": true} {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		if err := httpsOnly(req, nil); (err != nil) != wantErr {
			t.Errorf("redirect to %s: %v", target, err)
		}
	}
}
