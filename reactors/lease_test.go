package reactors_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
)

// A restart after a crash reacts at once: the lease of a holder that has ended is released at
// start. A holder that still runs keeps its lease, and the new reactor waits for it.
func TestAReactorFreesTheLeaseOfAHolderThatEnded(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		for _, gone := range []bool{true, false} {
			f := newFixture(t, engine, nil)
			head := f.append(learner.StreamPrefix+"ada", learner.Enrolled{LearnerID: "ada", CourseID: "go", At: time.Now()}).Position
			// The crashed process held the lease for an hour more.
			if err := f.queue.HoldLease(context.Background(), "reactor", "host/1/crashed", time.Hour); err != nil {
				t.Fatal(err)
			}
			asked := make(chan string, 1)
			r, err := reactors.NewReactor(f.log, f.queue, slog.New(slog.NewTextHandler(io.Discard, nil)),
				reactors.ReactorOptions{Owner: "host/2/restarted", LeaseTTL: 300 * time.Millisecond, RetryDelay: 10 * time.Millisecond,
					Gone: func(owner string) bool {
						select {
						case asked <- owner:
						default:
						}
						return gone
					}}, email.OnEnrolled)
			if err != nil {
				t.Fatal(err)
			}
			f.run(r.Run)
			if gone {
				eventually(t, "the restarted reactor reached the head", func() bool {
					pos, _ := r.Checkpoint(context.Background())
					return pos == head
				})
				assertOneJobEach(t, f, "ada")
				continue
			}
			select {
			case owner := <-asked:
				if owner != "host/1/crashed" {
					t.Errorf("Gone asked about %q, want the holder host/1/crashed", owner)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the reactor never asked whether the holder had ended")
			}
			// Several of its retries (every 100ms) go by: none may take a lease whose holder runs.
			time.Sleep(time.Second)
			if pos, _ := r.Checkpoint(context.Background()); pos != 0 {
				t.Errorf("checkpoint %d while a running process holds the lease; want 0", pos)
			}
		}
	})
}
