package auth

import (
	"context"
	"crypto/rsa"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
)

// countingKeys counts the full checks a Verifier makes: each looks up a key.
type countingKeys struct {
	keySource
	n atomic.Int64
}

func (c *countingKeys) key(ctx context.Context, t *jwt.Token) (any, uint64, error) {
	c.n.Add(1)
	return c.keySource.key(ctx, t)
}

func counted(v *Verifier) *countingKeys {
	c := &countingKeys{keySource: v.keys}
	v.keys = c
	return c
}

func TestVerifiedTokens(t *testing.T) {
	ctx := context.Background()
	learner := domain.Actor{UserID: "u-ada", Role: domain.Learner}

	t.Run("answers_a_verified_token_without_checking_it_again", func(t *testing.T) {
		v := newTestVerifier(t)
		keys := counted(v)
		token := sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
		for range 3 {
			if got, err := v.Verify(ctx, token); err != nil || got != learner {
				t.Fatalf("Verify = %+v, %v; want %+v", got, err, learner)
			}
		}
		if n := keys.n.Load(); n != 1 {
			t.Fatalf("%d full checks of one token verified 3 times; want 1", n)
		}
	})

	t.Run("trusts_a_verified_token_until_its_exp_and_never_beyond", func(t *testing.T) {
		c := &clock{now: t0}
		v, err := NewVerifier(testKey, Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		keys := counted(v)
		token := sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Hour - time.Second)
		if _, err := v.Verify(ctx, token); err != nil || keys.n.Load() != 1 {
			t.Fatalf("a second before exp: err %v, %d full checks; want nil, 1", err, keys.n.Load())
		}
		c.advance(2 * time.Second) // past exp, within the leeway: checked in full again
		if _, err := v.Verify(ctx, token); err != nil || keys.n.Load() != 2 {
			t.Fatalf("a second past exp: err %v, %d full checks; want nil, 2", err, keys.n.Load())
		}
		c.advance(DefaultLeeway)
		if _, err := v.Verify(ctx, token); err == nil {
			t.Fatal("accepted a remembered token past its exp and the leeway")
		}
	})

	t.Run("remembers_no_refused_token", func(t *testing.T) {
		v := newTestVerifier(t)
		keys := counted(v)
		forged := sign(t, jwt.SigningMethodHS256, otherKey, claimsAt(t0), nil)
		for range 2 {
			if _, err := v.Verify(ctx, forged); err == nil {
				t.Fatal("accepted a token signed with another key")
			}
		}
		if n := keys.n.Load(); n != 2 {
			t.Fatalf("%d full checks of a refused token sent twice; want 2", n)
		}
	})

	t.Run("remembers_none_when_told_so", func(t *testing.T) {
		v, err := NewVerifier(testKey, Options{Now: at(t0), VerifiedTokens: -1})
		if err != nil {
			t.Fatal(err)
		}
		keys := counted(v)
		token := sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
		v.Verify(ctx, token)
		v.Verify(ctx, token)
		if n := keys.n.Load(); n != 2 {
			t.Fatalf("%d full checks; want 2", n)
		}
	})
}

func TestVerifiedTokensAndKeyRotation(t *testing.T) {
	ctx := context.Background()
	rsaKey, rotated := rsaKeys()[0], rsaKeys()[1]
	tokenBy := func(t *testing.T, p *provider, c *clock, key *rsa.PrivateKey, kid string) string {
		return sign(t, jwt.SigningMethodRS256, key, oidcClaims(p, c.Now()), map[string]any{"kid": kid})
	}

	t.Run("refuses_a_remembered_token_as_soon_as_a_fetch_withdraws_its_key", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		old := tokenBy(t, p, c, rsaKey, "rsa-1")
		if _, err := v.Verify(ctx, old); err != nil {
			t.Fatal(err)
		}
		// The provider rotates: rsa-1 goes, rsa-2 comes. A token naming rsa-2 makes the
		// verifier fetch the set long before MaxKeyAge.
		p.set(func(p *provider) { p.keys = []jose.JSONWebKey{pubJWK(&rotated.PublicKey, "rsa-2", "RS256")} })
		c.advance(2 * time.Minute)
		if _, err := v.Verify(ctx, tokenBy(t, p, c, rotated, "rsa-2")); err != nil {
			t.Fatalf("Verify with the rotated-in key: %v", err)
		}
		if _, err := v.Verify(ctx, old); err == nil {
			t.Fatal("still accepted a remembered token whose key the provider withdrew")
		}
	})

	t.Run("refuses_a_remembered_token_once_its_kid_names_another_key", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		old := sign(t, jwt.SigningMethodRS256, rsaKey, func() jwt.MapClaims {
			cl := oidcClaims(p, t0)
			cl["exp"] = t0.Add(3 * time.Hour).Unix()
			return cl
		}(), map[string]any{"kid": "rsa-1"})
		if _, err := v.Verify(ctx, old); err != nil {
			t.Fatal(err)
		}
		p.set(func(p *provider) { p.keys = []jose.JSONWebKey{pubJWK(&rotated.PublicKey, "rsa-1", "RS256")} })
		c.advance(61 * time.Minute) // the keys are due to be fetched again
		if _, err := v.Verify(ctx, old); err == nil {
			t.Fatal("still accepted a remembered token after its kid was given another key")
		}
	})

	t.Run("keeps_tokens_verified_across_a_fetch_that_changes_nothing", func(t *testing.T) {
		p := newProvider(t, pubJWK(&rsaKey.PublicKey, "rsa-1", "RS256"))
		c := &clock{now: t0}
		v := p.verifier(t, c)
		keys := counted(v)
		token := sign(t, jwt.SigningMethodRS256, rsaKey, func() jwt.MapClaims {
			cl := oidcClaims(p, t0)
			cl["exp"] = t0.Add(3 * time.Hour).Unix()
			return cl
		}(), map[string]any{"kid": "rsa-1"})
		v.Verify(ctx, token)
		c.advance(61 * time.Minute)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		if n, f := keys.n.Load(), p.fetches(); n != 2 || f != 2 {
			t.Fatalf("%d full checks, %d fetches once the keys were old; want 2 and 2", n, f)
		}
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		if n := keys.n.Load(); n != 2 {
			t.Fatalf("%d full checks after a fetch of the same keys; want still 2", n)
		}
	})
}

// BenchmarkVerify compares a full check of an HS256 token with an answer from the verified
// tokens, as a client sending the same token on every request gets.
func BenchmarkVerify(b *testing.B) {
	token := sign(b, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
	for _, bc := range []struct {
		name string
		size int
	}{{"full", -1}, {"remembered", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := NewVerifier(testKey, Options{Now: at(t0), VerifiedTokens: bc.size})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
