package ticket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/domain"
)

// DefaultPrefix is put before every key of a Redis store.
const DefaultPrefix = "edutrack:ticket:"

// redisTimeout bounds each operation: a ticket is taken while a stream opens, and a Redis that
// does not answer must not hold the page up for long.
const redisTimeout = 500 * time.Millisecond

// Redis keeps tickets in Redis, so that a ticket one read process issued opens a stream on any
// other. Redis expires them; GETDEL takes one at most once.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a store in client under prefix (DefaultPrefix if empty).
func NewRedis(client redis.UniversalClient, prefix string) (*Redis, error) {
	if client == nil {
		return nil, errors.New("ticket: NewRedis needs a client")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Redis{client: client, prefix: prefix}, nil
}

type stored struct {
	Sub  string      `json:"sub"`
	Role domain.Role `json:"role"`
}

// Put implements Store. NX: a key that exists already is never overwritten (256 random bits
// make that a broken random source, which should fail loudly rather than hand a ticket on).
func (r *Redis) Put(ctx context.Context, key string, a domain.Actor, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	b, err := json.Marshal(stored{Sub: a.UserID, Role: a.Role})
	if err != nil {
		return err
	}
	ok, err := r.client.SetNX(ctx, r.prefix+key, b, ttl).Result()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("ticket: a ticket with the same key exists")
	}
	return nil
}

// Take implements Store.
func (r *Redis) Take(ctx context.Context, key string) (domain.Actor, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	b, err := r.client.GetDel(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return domain.Actor{}, ErrInvalid
	}
	if err != nil {
		return domain.Actor{}, err
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return domain.Actor{}, fmt.Errorf("ticket: stored value: %w", err)
	}
	// A value without a role would be EduTrack itself (domain.Actor.System): never a caller.
	role, err := domain.ParseRole(string(s.Role))
	if err != nil || s.Sub == "" {
		return domain.Actor{}, fmt.Errorf("ticket: stored value names no caller")
	}
	return domain.Actor{UserID: s.Sub, Role: role}, nil
}

var _ Store = (*Redis)(nil)
