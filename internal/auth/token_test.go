package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	t0       = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	testKey  = []byte("0123456789abcdef0123456789abcdef-edutrack")
	otherKey = []byte("fedcba9876543210fedcba9876543210-someone-else")
)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// claimsAt are the claims of a valid token at t0, for cases to change.
func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":  DefaultIssuer,
		"aud":  []string{DefaultAudience},
		"sub":  "u-ada",
		"role": "learner",
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  now.Add(time.Hour).Unix(),
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := NewVerifier(testKey, Options{Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := claimsAt(t0)
		change(c)
		return c
	}
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testKey, c, nil) }
	valid := hs(claimsAt(t0))
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name   string
		token  string
		want   domain.Actor
		reason string // describe's words when the token is refused
	}{
		{name: "accepts a valid token", token: valid, want: domain.Actor{UserID: "u-ada", Role: domain.Learner}},
		{name: "accepts each role", token: hs(with(func(c jwt.MapClaims) { c["role"] = "auditor" })), want: domain.Actor{UserID: "u-ada", Role: domain.Auditor}},
		{name: "accepts an audience list that holds ours", token: hs(with(func(c jwt.MapClaims) { c["aud"] = []string{"lms", DefaultAudience} })), want: domain.Actor{UserID: "u-ada", Role: domain.Learner}},
		{name: "accepts a single-string audience", token: hs(with(func(c jwt.MapClaims) { c["aud"] = DefaultAudience })), want: domain.Actor{UserID: "u-ada", Role: domain.Learner}},

		{name: "refuses an expired token", token: hs(with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })), reason: "the token has expired"},
		{name: "accepts a token expired 29s ago, inside the skew", token: hs(with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-29 * time.Second).Unix() })), want: domain.Actor{UserID: "u-ada", Role: domain.Learner}},
		{name: "refuses a token expired exactly the skew ago", token: hs(with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-30 * time.Second).Unix() })), reason: "the token has expired"},
		{name: "refuses a token without expiry", token: hs(with(func(c jwt.MapClaims) { delete(c, "exp") })), reason: "the token is not valid"},
		{name: "refuses a token not yet valid", token: hs(with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() })), reason: "the token is not valid yet"},
		{name: "accepts a token valid from exactly the skew ahead", token: hs(with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(30 * time.Second).Unix() })), want: domain.Actor{UserID: "u-ada", Role: domain.Learner}},
		{name: "refuses a token valid from 31s ahead", token: hs(with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(31 * time.Second).Unix() })), reason: "the token is not valid yet"},
		{name: "refuses a token issued in the future", token: hs(with(func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Minute).Unix() })), reason: "the token is not valid yet"},
		{name: "refuses an expiry that is not a number", token: hs(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), reason: "the token is not valid"},

		{name: "refuses a wrong issuer", token: hs(with(func(c jwt.MapClaims) { c["iss"] = "https://elsewhere.example" })), reason: "the token is not valid"},
		{name: "refuses a missing issuer", token: hs(with(func(c jwt.MapClaims) { delete(c, "iss") })), reason: "the token is not valid"},
		{name: "refuses a wrong audience", token: hs(with(func(c jwt.MapClaims) { c["aud"] = []string{"gradebook"} })), reason: "the token is not valid"},
		{name: "refuses a missing audience", token: hs(with(func(c jwt.MapClaims) { delete(c, "aud") })), reason: "the token is not valid"},

		{name: "refuses a token signed with another key", token: sign(t, jwt.SigningMethodHS256, otherKey, claimsAt(t0), nil), reason: "the token is not valid"},
		{name: "refuses a valid signature over changed claims", token: parts[0] + "." + enc([]byte(`{"iss":"edutrack","aud":["edutrack"],"sub":"u-ada","role":"admin","exp":9999999999}`)) + "." + parts[2], reason: "the token is not valid"},
		{name: "refuses alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsAt(t0), nil), reason: "the token is not valid"},
		{name: "refuses alg none with the valid signature left on", token: enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], reason: "the token is not valid"},
		{name: "refuses alg NONE in capitals", token: enc([]byte(`{"alg":"NONE","typ":"JWT"}`)) + "." + parts[1] + ".", reason: "the token is not valid"},
		{name: "refuses HS512 with the right key", token: sign(t, jwt.SigningMethodHS512, testKey, claimsAt(t0), nil), reason: "the token is not valid"},
		{name: "refuses RS256 when only HS256 is allowed", token: sign(t, jwt.SigningMethodRS256, rsaKey, claimsAt(t0), nil), reason: "the token is not valid"},
		{name: "refuses ES256 when only HS256 is allowed", token: sign(t, jwt.SigningMethodES256, ecKey, claimsAt(t0), nil), reason: "the token is not valid"},
		{name: "refuses critical header parameters", token: sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), map[string]any{"crit": []string{"exp"}}), reason: "the token is not valid"},

		{name: "refuses a missing role", token: hs(with(func(c jwt.MapClaims) { delete(c, "role") })), reason: "the token carries no EduTrack role"},
		{name: "refuses an unknown role", token: hs(with(func(c jwt.MapClaims) { c["role"] = "superuser" })), reason: "the token carries no EduTrack role"},
		{name: "refuses a role in other case", token: hs(with(func(c jwt.MapClaims) { c["role"] = "Admin" })), reason: "the token carries no EduTrack role"},
		{name: "refuses a role that is not a string", token: hs(with(func(c jwt.MapClaims) { c["role"] = []string{"admin"} })), reason: "the token carries no EduTrack role"},
		{name: "refuses a missing subject", token: hs(with(func(c jwt.MapClaims) { delete(c, "sub") })), reason: "the token is not valid"},
		{name: "refuses a subject with control characters", token: hs(with(func(c jwt.MapClaims) { c["sub"] = "u-ada\nrole=admin" })), reason: "the token is not valid"},
		{name: "refuses a subject longer than 255 bytes", token: hs(with(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("a", 256) })), reason: "the token is not valid"},

		{name: "refuses an empty token", token: "", reason: "the token is not valid"},
		{name: "refuses a token of two parts", token: parts[0] + "." + parts[1], reason: "the token is not valid"},
		{name: "refuses padded base64", token: parts[0] + "=." + parts[1] + "." + parts[2], reason: "the token is not valid"},
		{name: "refuses a token over 8 KiB", token: hs(with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 9000) })), reason: "the token is not valid"},
	}
	v := newTestVerifier(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("principal (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token as %+v", got)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if got != (domain.Actor{}) {
				t.Errorf("refused token still gave principal %+v", got)
			}
			if r := describe(err); r != tt.reason {
				t.Errorf("reason %q (from %v); want %q", r, err, tt.reason)
			}
		})
	}
}

func TestVerifierOptions(t *testing.T) {
	t.Run("checks_the_configured_issuer_audience_and_role_claim", func(t *testing.T) {
		v, err := NewVerifier(testKey, Options{Issuer: "https://school.example", Audience: "lms", RoleClaim: "edutrack_role", Now: at(t0)})
		if err != nil {
			t.Fatal(err)
		}
		c := claimsAt(t0)
		c["iss"], c["aud"], c["edutrack_role"] = "https://school.example", "lms", "instructor"
		delete(c, "role")
		got, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, testKey, c, nil))
		if err != nil || got != (domain.Actor{UserID: "u-ada", Role: domain.Instructor}) {
			t.Fatalf("Verify = %+v, %v; want u-ada as instructor", got, err)
		}
		if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)); err == nil {
			t.Fatal("accepted a token for the default issuer and audience")
		}
	})
	t.Run("widens_the_skew_to_the_configured_leeway", func(t *testing.T) {
		v, err := NewVerifier(testKey, Options{Leeway: 2 * time.Minute, Now: at(t0)})
		if err != nil {
			t.Fatal(err)
		}
		c := claimsAt(t0)
		c["exp"] = t0.Add(-90 * time.Second).Unix()
		if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, testKey, c, nil)); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	for _, tt := range []struct {
		name string
		key  []byte
		opts Options
	}{
		{"refuses_a_key_under_32_bytes", []byte("short-key"), Options{}},
		{"refuses_a_negative_leeway", testKey, Options{Leeway: -time.Second}},
		{"refuses_a_leeway_over_five_minutes", testKey, Options{Leeway: time.Hour}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.key, tt.opts); err == nil {
				t.Fatal("NewVerifier succeeded")
			}
		})
	}
}

func TestMint(t *testing.T) {
	v := newTestVerifier(t)
	t.Run("makes_a_token_the_verifier_accepts", func(t *testing.T) {
		tok, err := Mint(testKey, Claims{Subject: "u-grace", Role: domain.Instructor, IssuedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(context.Background(), tok)
		if err != nil || got != (domain.Actor{UserID: "u-grace", Role: domain.Instructor}) {
			t.Fatalf("Verify = %+v, %v; want u-grace as instructor", got, err)
		}
	})
	t.Run("makes_a_token_that_expires_after_its_ttl", func(t *testing.T) {
		tok, err := Mint(testKey, Claims{Subject: "u-grace", Role: domain.Admin, TTL: 10 * time.Minute, IssuedAt: t0.Add(-11 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwt.ErrTokenExpired) {
			t.Fatalf("Verify: %v; want expired", err)
		}
	})
	t.Run("defaults_to_a_one_hour_ttl", func(t *testing.T) {
		tok, err := Mint(testKey, Claims{Subject: "u-grace", Role: domain.Admin, IssuedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		c := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
			t.Fatal(err)
		}
		if exp, _ := c.GetExpirationTime(); !exp.Equal(t0.Add(time.Hour)) {
			t.Fatalf("exp = %v; want %v", exp, t0.Add(time.Hour))
		}
	})
	for _, tt := range []struct {
		name string
		key  []byte
		c    Claims
	}{
		{"refuses_an_unknown_role", testKey, Claims{Subject: "u-grace", Role: "root"}},
		{"refuses_an_empty_role", testKey, Claims{Subject: "u-grace"}},
		{"refuses_an_empty_subject", testKey, Claims{Role: domain.Learner}},
		{"refuses_a_negative_ttl", testKey, Claims{Subject: "u-grace", Role: domain.Learner, TTL: -time.Hour}},
		{"refuses_a_short_key", []byte("short"), Claims{Subject: "u-grace", Role: domain.Learner}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := Mint(tt.key, tt.c); err == nil {
				t.Fatalf("Mint = %q; want an error", tok)
			}
		})
	}
}
