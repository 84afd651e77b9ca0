package readstore

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrLeaseHeld means another owner holds the lease and it has not expired.
	ErrLeaseHeld = errors.New("lease held by another owner")
	// ErrFenced means a write carried a fencing token the lease has moved past: its writer
	// lost the lease (it paused, or its renewals failed) and another owner took it.
	ErrFenced = errors.New("fenced off: the lease belongs to a newer owner")
)

// Lease grants one owner the right to write for a while. Each change of owner raises Token, so
// writes carrying an older token can be refused.
type Lease struct {
	Name    string
	Owner   string
	Token   uint64
	Expires time.Time
}

// Leaser is implemented by stores that grant leases: one projector process at a time writes
// the read models.
type Leaser interface {
	// AcquireLease takes lease name for owner until ttl from now, or extends it when owner holds
	// it already (the token stays). A new owner gets a larger token. It returns ErrLeaseHeld
	// while another owner's lease runs.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (Lease, error)
	// ReleaseLease ends owner's lease, so that another can take it at once.
	ReleaseLease(ctx context.Context, name, owner string) error
}

// Fence is the lease a write claims to hold.
type Fence struct {
	Lease string
	Token uint64
}

type fenceKey struct{}

// WithFence marks the writes made with ctx (Commit, Drop, AddDeadLetter) as made under fence: a
// store refuses them with ErrFenced once the lease's token is no longer fence's.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence of ctx, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Fenced returns store with every write made under fence, whatever context the caller passes.
func Fenced(store Store, fence Fence) Store { return fenced{Store: store, fence: fence} }

type fenced struct {
	Store
	fence Fence
}

func (f fenced) Commit(ctx context.Context, projection string, checkpoint uint64, writes []Write) error {
	return f.Store.Commit(WithFence(ctx, f.fence), projection, checkpoint, writes)
}

func (f fenced) Drop(ctx context.Context, projection string, colls []string) error {
	return f.Store.Drop(WithFence(ctx, f.fence), projection, colls)
}

func (f fenced) AddDeadLetter(ctx context.Context, d DeadLetter) error {
	return f.Store.AddDeadLetter(WithFence(ctx, f.fence), d)
}
