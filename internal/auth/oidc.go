package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// oidcMethods are the algorithms accepted from a provider. Symmetric ones are left out: a
// provider's keys are public, and an HMAC "signed" with one proves nothing.
var oidcMethods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}

const (
	// maxDocumentBytes bounds the discovery document and key set we read.
	maxDocumentBytes = 1 << 20
	// minRSABits refuses keys that are too weak to trust.
	minRSABits = 2048
)

// NewOIDCVerifier returns a Verifier of RS256 and ES256 tokens signed by the OpenID Connect
// provider at opts.Issuer (an https URL). It reads the provider's discovery document and key
// set before returning, so a wrong issuer stops start-up instead of refusing every request.
// Tokens must name their key with kid. log receives failed key refreshes.
func NewOIDCVerifier(ctx context.Context, log *slog.Logger, opts Options) (*Verifier, error) {
	if log == nil {
		return nil, errors.New("auth: NewOIDCVerifier needs a logger")
	}
	if err := checkHTTPS(opts.Issuer); err != nil {
		return nil, fmt.Errorf("auth: OIDC issuer: %w", err)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: httpsOnly}
	}
	if opts.MinRefreshInterval == 0 {
		opts.MinRefreshInterval = time.Minute
	}
	if opts.MaxKeyAge == 0 {
		opts.MaxKeyAge = time.Hour
	}
	if opts.MinRefreshInterval < 0 || opts.MaxKeyAge < 0 {
		return nil, errors.New("auth: negative OIDC refresh interval")
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	uri, err := discoverJWKS(ctx, opts.HTTPClient, opts.Issuer)
	if err != nil {
		return nil, err
	}
	ks := &jwks{
		client:     opts.HTTPClient,
		uri:        uri,
		minRefresh: opts.MinRefreshInterval,
		maxAge:     opts.MaxKeyAge,
		now:        opts.Now,
		log:        log,
	}
	if err := ks.refresh(ctx); err != nil {
		return nil, err
	}
	return newVerifier(ks, oidcMethods, opts)
}

// checkHTTPS refuses plain-text URLs: keys fetched over http could be anyone's.
func checkHTTPS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an https URL without query or fragment", raw)
	}
	return nil
}

// httpsOnly stops a redirect from downgrading a key fetch to plain text.
func httpsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("refused redirect to %s", req.URL.Redacted())
	}
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

// discoverJWKS reads the provider's discovery document and returns its jwks_uri.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	body, err := get(ctx, client, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("auth: OIDC discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("auth: OIDC discovery: %w", err)
	}
	// OpenID Connect Discovery section 4.3: a document for another issuer must not be used.
	if doc.Issuer != issuer {
		return "", fmt.Errorf("auth: OIDC discovery names issuer %q, not %q", doc.Issuer, issuer)
	}
	if err := checkHTTPS(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("auth: OIDC jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

func get(ctx context.Context, client *http.Client, uri string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", uri, maxDocumentBytes)
	}
	return body, nil
}

// publicKey is a usable key of the provider's set.
type publicKey struct {
	key any    // *rsa.PublicKey or *ecdsa.PublicKey on P-256
	alg string // the alg the provider pinned the key to, if any
}

// jwks is a provider's key set, fetched again when it is old or a token names a key it lacks.
type jwks struct {
	client     *http.Client
	uri        string
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu      sync.RWMutex
	keys    map[string]publicKey
	fetched time.Time
	gen     uint64 // counts the fetches that changed keys, so tokens verified before are checked again

	// fetchMu lets one fetch run at a time; lastTry, under it, spaces them by minRefresh.
	fetchMu sync.Mutex
	lastTry time.Time
}

var (
	errNoKid      = errors.New("token names no key (kid)")
	errUnknownKid = errors.New("token names a key the provider does not publish")
	errKeyAlg     = errors.New("token's alg does not fit its key")
)

func (s *jwks) key(ctx context.Context, t *jwt.Token) (any, uint64, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, 0, errNoKid
	}
	k, gen, ok, stale := s.lookup(kid)
	switch {
	case !ok:
		// A kid we lack may be a key the provider has just rotated in: wait for one fetch.
		s.fetchMu.Lock()
		s.tryRefresh(ctx)
		s.fetchMu.Unlock()
		k, gen, ok, _ = s.lookup(kid)
	case stale && s.fetchMu.TryLock():
		// Old keys still verify while one request refreshes them; the others do not wait.
		s.tryRefresh(ctx)
		s.fetchMu.Unlock()
		k, gen, ok, _ = s.lookup(kid)
	}
	if !ok {
		return nil, 0, errUnknownKid
	}
	alg := t.Method.Alg()
	if k.alg != "" && k.alg != alg {
		return nil, 0, errKeyAlg
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		if alg == jwt.SigningMethodRS256.Alg() {
			return key, gen, nil
		}
	case *ecdsa.PublicKey:
		if alg == jwt.SigningMethodES256.Alg() && key.Curve == elliptic.P256() {
			return key, gen, nil
		}
	}
	return nil, 0, errKeyAlg
}

func (s *jwks) lookup(kid string) (k publicKey, gen uint64, ok, stale bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok = s.keys[kid]
	return k, s.gen, ok, s.now().Sub(s.fetched) > s.maxAge
}

// current implements keySource. Keys past MaxKeyAge are not fresh, so a token verified with
// them takes the full check, which fetches them again.
func (s *jwks) current() (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen, s.now().Sub(s.fetched) <= s.maxAge
}

// tryRefresh fetches the set unless the last try was too recent; the caller holds fetchMu. A
// failed fetch keeps the keys we have: a provider that is briefly down must not log everyone out.
func (s *jwks) tryRefresh(ctx context.Context) {
	if s.now().Sub(s.lastTry) < s.minRefresh {
		return
	}
	// The fetch serves every request waiting on it, so the caller going away must not cut it
	// short; the client's own timeout bounds it.
	if err := s.refresh(context.WithoutCancel(ctx)); err != nil {
		s.log.WarnContext(ctx, "refresh OIDC keys", "err", err)
	}
}

func (s *jwks) refresh(ctx context.Context) error {
	s.lastTry = s.now()
	body, err := get(ctx, s.client, s.uri)
	if err != nil {
		return fmt.Errorf("auth: fetch OIDC keys: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("auth: OIDC keys: %w", err)
	}
	s.mu.Lock()
	if !sameKeys(s.keys, keys) {
		s.gen++
	}
	s.keys, s.fetched = keys, s.now()
	s.mu.Unlock()
	return nil
}

// sameKeys reports whether two key sets hold the same keys under the same kids, pinned to the
// same algorithms.
func sameKeys(a, b map[string]publicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, ka := range a {
		kb, ok := b[kid]
		if !ok || ka.alg != kb.alg {
			return false
		}
		eq, ok := ka.key.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(kb.key) {
			return false
		}
	}
	return true
}

// parseJWKS returns the signing keys of a JSON Web Key Set that EduTrack can use, by kid. Keys
// it cannot use (encryption keys, other types, weak RSA, keys without kid, private material)
// are skipped rather than failing the set, since providers publish keys for other clients too.
func parseJWKS(body []byte) (map[string]publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]publicKey, len(set.Keys))
	dups := map[string]bool{}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		// A set that publishes private or symmetric keys is broken; using them would trust
		// whoever read the set.
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || !k.IsPublic() || !k.Valid() {
			continue
		}
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey:
			if key.Curve != elliptic.P256() {
				continue
			}
		default:
			continue
		}
		if _, dup := keys[k.KeyID]; dup || dups[k.KeyID] {
			// Two keys under one kid: we cannot tell which a token means.
			delete(keys, k.KeyID)
			dups[k.KeyID] = true
			continue
		}
		keys[k.KeyID] = publicKey{key: k.Key, alg: k.Algorithm}
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no usable RS256 or ES256 signing key")
	}
	return keys, nil
}
