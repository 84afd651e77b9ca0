package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edutrack/edutrack/domain"
)

// FuzzParseToken feeds the verifier arbitrary tokens. It must never panic, and whatever it
// accepts must carry a valid HS256 signature by the key, checked here without the JWT library,
// and name a real role and a clean subject. Run it with go test -fuzz=FuzzParseToken ./auth.
func FuzzParseToken(f *testing.F) {
	v := newTestVerifier(f)
	expired := claimsAt(t0)
	expired["exp"] = t0.Add(-time.Hour).Unix()
	noRole := claimsAt(t0)
	delete(noRole, "role")
	valid := sign(f, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		valid,
		sign(f, jwt.SigningMethodHS256, testKey, expired, nil),
		sign(f, jwt.SigningMethodHS256, testKey, noRole, nil),
		sign(f, jwt.SigningMethodHS256, otherKey, claimsAt(t0), nil),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsAt(t0), nil),
		sign(f, jwt.SigningMethodHS256, testKey, claimsAt(t0), map[string]any{"crit": []string{"x"}, "kid": "k"}),
		enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"HS256","alg":"none"}`)) + "." + parts[1] + ".",
		parts[0] + "." + enc([]byte(`{"sub":"u-ada","role":"admin"}`)) + "." + parts[2],
		"", ".", "..", "a.b.c", "Bearer " + valid, valid + ".", valid + "=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			if p != (domain.Actor{}) {
				t.Fatalf("refused token gave principal %+v", p)
			}
			return
		}
		if !signedWith(token, testKey) {
			t.Fatalf("accepted a token not signed with the key: %q", token)
		}
		if _, err := domain.ParseRole(string(p.Role)); err != nil || !validSubject(p.UserID) {
			t.Fatalf("accepted principal %+v", p)
		}
	})
}

// signedWith reports whether token is an HS256 JWS whose signature key made.
func signedWith(token string, key []byte) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	b64 := base64.RawURLEncoding.Strict()
	rawHeader, err := b64.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(rawHeader, &header) != nil || header.Alg != "HS256" {
		return false
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, mac.Sum(nil))
}

// FuzzParseJWKS feeds the key set parser arbitrary documents, as a provider or whoever sits
// between it and EduTrack could send. It must never panic, and every key it keeps must be a
// signing key we accept: RSA of 2048 bits or more, or ECDSA on P-256, under a kid.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`,
		`{"keys":[{"kty":"RSA","kid":"rsa-1","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","x":"AA","y":"AA"}]}`,
		`{"keys":null}`, `{}`, `[]`, `null`, ``, `{"keys":[1,"x",null,{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			return
		}
		for kid, k := range keys {
			if kid == "" {
				t.Fatal("kept a key without kid")
			}
			switch key := k.key.(type) {
			case *rsa.PublicKey:
				if key.N.BitLen() < minRSABits {
					t.Fatalf("kept an RSA key of %d bits", key.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if key.Curve.Params().Name != "P-256" {
					t.Fatalf("kept an EC key on %s", key.Curve.Params().Name)
				}
			default:
				t.Fatalf("kept a key of type %T", key)
			}
		}
	})
}
