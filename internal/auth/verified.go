package auth

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/edutrack/edutrack/domain"
)

// DefaultVerifiedTokens is how many verified tokens a Verifier remembers by default: a school's
// users at once, each with a token or two, at about 150 bytes each.
const DefaultVerifiedTokens = 65536

// verified remembers tokens whose signature and claims were checked, by the SHA-256 of the token
// (the credential itself is not kept), so that a client sending the same token on every request
// pays for one hash and one lookup instead of a JSON parse and a signature check each time.
//
// A remembered token is trusted only until its exp (without the leeway a fresh check would
// give), and only while the keys it was checked with are the keys in use: each entry carries the
// generation of its key source, which changes when a key set is fetched with any key withdrawn,
// added or changed, and a key set due for a refresh is not trusted until it is refreshed.
type verified struct {
	tokens *lru.Cache[[sha256.Size]byte, verifiedToken]
	now    func() time.Time
}

type verifiedToken struct {
	actor domain.Actor
	exp   time.Time
	gen   uint64
}

func newVerified(size int, now func() time.Time) (*verified, error) {
	c, err := lru.New[[sha256.Size]byte, verifiedToken](size)
	if err != nil {
		return nil, err
	}
	return &verified{tokens: c, now: now}, nil
}

// get returns the caller of a token remembered under sum, if it may still be trusted with keys
// of generation gen, the current one.
func (c *verified) get(sum [sha256.Size]byte, gen uint64) (domain.Actor, bool) {
	t, ok := c.tokens.Get(sum)
	if !ok {
		return domain.Actor{}, false
	}
	if t.gen != gen || !c.now().Before(t.exp) {
		c.tokens.Remove(sum)
		return domain.Actor{}, false
	}
	return t.actor, true
}

func (c *verified) add(sum [sha256.Size]byte, t verifiedToken) {
	c.tokens.Add(sum, t)
}
