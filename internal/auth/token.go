package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
)

// Defaults of Options and Claims.
const (
	DefaultIssuer   = "edutrack"
	DefaultAudience = "edutrack"
	DefaultLeeway   = 30 * time.Second
	DefaultTTL      = time.Hour
	// DefaultRoleClaim is the claim that carries the role; Mint always writes it.
	DefaultRoleClaim = "role"
)

// MinKeyLen is the shortest HMAC key accepted: HS256 needs a key at least as long as its hash
// (RFC 7518 section 3.2), or the signature is only as strong as the key.
const MinKeyLen = 32

// maxTokenLen bounds what the parser looks at; real tokens are well under 2 KiB.
const maxTokenLen = 8 << 10

// maxSubjectLen is OpenID Connect's bound on sub. The subject lands in event metadata forever.
const maxSubjectLen = 255

// ErrInvalidToken wraps every reason Verify refuses a token.
var ErrInvalidToken = errors.New("auth: invalid token")

// Reasons a token with a good signature is still refused.
var (
	errNoSubject = errors.New("token has no usable subject")
	errNoRole    = errors.New("token carries no role")
	errCrit      = errors.New("token has critical header parameters")
)

// Options tune a Verifier.
type Options struct {
	// Issuer is the iss every token must carry. NewVerifier defaults it to DefaultIssuer;
	// NewOIDCVerifier requires it: it is the provider's issuer URL.
	Issuer string
	// Audience is an aud every token must carry (default DefaultAudience).
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat (default DefaultLeeway).
	Leeway time.Duration
	// RoleClaim names the string claim holding the role (default DefaultRoleClaim), for OIDC
	// providers that can only emit a custom claim name.
	RoleClaim string
	// Now is the clock (default time.Now).
	Now func() time.Time

	// HTTPClient fetches the OIDC discovery document and key set (default a client with a 10s
	// timeout that follows only https redirects). Unused by NewVerifier.
	HTTPClient *http.Client
	// MinRefreshInterval spaces the key set fetches that a token with an unknown kid triggers,
	// so forged kids cannot make EduTrack hammer the provider (default 1m). Unused by NewVerifier.
	MinRefreshInterval time.Duration
	// MaxKeyAge is how long fetched keys are used before they are fetched again, so a key the
	// provider withdrew stops being accepted (default 1h). Unused by NewVerifier.
	MaxKeyAge time.Duration

	// VerifiedTokens is how many verified tokens to remember, so that the same token is not
	// checked again on every request until it expires or its key changes (default
	// DefaultVerifiedTokens; negative remembers none).
	VerifiedTokens int
}

func (o *Options) defaults() error {
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Leeway < 0 || o.Leeway > 5*time.Minute {
		return fmt.Errorf("auth: leeway %s: want between 0 and 5m", o.Leeway)
	}
	if o.RoleClaim == "" {
		o.RoleClaim = DefaultRoleClaim
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.VerifiedTokens == 0 {
		o.VerifiedTokens = DefaultVerifiedTokens
	}
	return nil
}

// keySource finds the key that should have signed a token. It runs before the signature is
// checked, so it must trust nothing in the token but use the header to pick a key.
type keySource interface {
	// key returns the key and the generation of the key set it was found in.
	key(ctx context.Context, t *jwt.Token) (key any, gen uint64, err error)
	// current returns the generation of the keys in use, and false when they are due to be
	// fetched again: a token checked with them must then be checked again.
	current() (gen uint64, fresh bool)
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	parser    *jwt.Parser
	keys      keySource
	roleClaim string
	verified  *verified // nil when none are remembered
}

// NewVerifier returns a Verifier of HS256 tokens signed with key (at least MinKeyLen bytes),
// such as those Mint makes.
func NewVerifier(key []byte, opts Options) (*Verifier, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("auth: the JWT key has %d bytes; want at least %d", len(key), MinKeyLen)
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	return newVerifier(hmacKey(append([]byte(nil), key...)), []string{jwt.SigningMethodHS256.Alg()}, opts)
}

func newVerifier(keys keySource, methods []string, opts Options) (*Verifier, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	var vt *verified
	if opts.VerifiedTokens > 0 {
		var err error
		if vt, err = newVerified(opts.VerifiedTokens, opts.Now); err != nil {
			return nil, err
		}
	}
	return &Verifier{
		// The method list is the defence against alg "none" and against an HS256 token signed
		// with an RSA public key: the parser refuses any other alg before it looks up a key.
		parser: jwt.NewParser(
			jwt.WithValidMethods(methods),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(opts.Now),
			jwt.WithStrictDecoding(),
		),
		keys:      keys,
		roleClaim: opts.RoleClaim,
		verified:  vt,
	}, nil
}

// Verify returns the caller a token names, or an error wrapping ErrInvalidToken. ctx bounds any
// key fetch the token causes. A token verified before is answered from memory until its exp, as
// long as the keys it was verified with are still the keys in use.
func (v *Verifier) Verify(ctx context.Context, token string) (domain.Actor, error) {
	if len(token) > maxTokenLen {
		return domain.Actor{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	if v.verified == nil {
		a, _, err := v.verify(ctx, token)
		return a, err
	}
	sum := sha256.Sum256([]byte(token))
	if gen, fresh := v.keys.current(); fresh {
		if a, ok := v.verified.get(sum, gen); ok {
			return a, nil
		}
	}
	a, t, err := v.verify(ctx, token)
	if err != nil {
		return domain.Actor{}, err
	}
	v.verified.add(sum, t)
	return a, nil
}

// verify checks token in full: its signature, with the key it names, and its claims.
func (v *Verifier) verify(ctx context.Context, token string) (domain.Actor, verifiedToken, error) {
	claims := jwt.MapClaims{}
	var gen uint64
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// RFC 7515 section 4.1.11: extensions we do not understand must not be ignored.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCrit
		}
		k, g, err := v.keys.key(ctx, t)
		gen = g
		return k, err
	})
	if err != nil {
		return domain.Actor{}, verifiedToken{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	sub, err := claims.GetSubject()
	if err != nil || !validSubject(sub) {
		return domain.Actor{}, verifiedToken{}, fmt.Errorf("%w: %w", ErrInvalidToken, errNoSubject)
	}
	name, ok := claims[v.roleClaim].(string)
	if !ok {
		return domain.Actor{}, verifiedToken{}, fmt.Errorf("%w: %w", ErrInvalidToken, errNoRole)
	}
	role, err := domain.ParseRole(name)
	if err != nil {
		return domain.Actor{}, verifiedToken{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // the parser requires exp; this only keeps a nil from passing
		return domain.Actor{}, verifiedToken{}, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	a := domain.Actor{UserID: sub, Role: role}
	return a, verifiedToken{actor: a, exp: exp.Time, gen: gen}, nil
}

// validSubject accepts printable ASCII up to maxSubjectLen, as OpenID Connect requires of sub;
// anything else would end up in logs and event metadata.
func validSubject(s string) bool {
	if s == "" || len(s) > maxSubjectLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hmacKey is the deployment's own signing key.
type hmacKey []byte

func (k hmacKey) key(_ context.Context, t *jwt.Token) (any, uint64, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, 0, fmt.Errorf("unexpected signing method %s", t.Method.Alg())
	}
	return []byte(k), 0, nil
}

// current implements keySource: the key never changes while the process runs.
func (hmacKey) current() (uint64, bool) { return 0, true }

// Claims is what Mint puts in a token.
type Claims struct {
	Subject string
	Role    domain.Role
	// TTL is how long the token is valid (default DefaultTTL).
	TTL time.Duration
	// Issuer and Audience default to DefaultIssuer and DefaultAudience, which NewVerifier
	// accepts by default.
	Issuer   string
	Audience string
	// IssuedAt is when validity starts (default now).
	IssuedAt time.Time
}

type mintedClaims struct {
	jwt.RegisteredClaims
	Role domain.Role `json:"role"`
}

// Mint returns an HS256 token for c signed with key, for the token command and for tests.
func Mint(key []byte, c Claims) (string, error) {
	if len(key) < MinKeyLen {
		return "", fmt.Errorf("auth: the JWT key has %d bytes; want at least %d", len(key), MinKeyLen)
	}
	if !validSubject(c.Subject) {
		return "", fmt.Errorf("auth: subject must be 1 to %d printable ASCII characters", maxSubjectLen)
	}
	if _, err := domain.ParseRole(string(c.Role)); err != nil {
		return "", err
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < 0 {
		return "", fmt.Errorf("auth: negative TTL %s", c.TTL)
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, mintedClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  jwt.ClaimStrings{c.Audience},
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			NotBefore: jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.IssuedAt.Add(c.TTL)),
		},
		Role: c.Role,
	})
	return t.SignedString(key)
}
