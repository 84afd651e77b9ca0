package ticket

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ada = domain.Actor{UserID: "ada", Role: domain.Learner}

// stores are the stores every test runs against: each a fresh one.
func stores(t *testing.T) map[string]func(t *testing.T) Store {
	addr := testredis.Start(t)
	return map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return NewMemory() },
		"redis": func(t *testing.T) Store {
			client := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { client.Close() })
			s, err := NewRedis(client, "test:"+strings.ReplaceAll(t.Name(), "/", ":")+":")
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestTickets(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("redeems_a_ticket_once_as_its_caller", func(t *testing.T) {
				tk, _ := New(newStore(t), 0)
				issued, err := tk.Issue(context.Background(), ada)
				if err != nil {
					t.Fatal(err)
				}
				if until := time.Until(issued.ExpiresAt); until < 28*time.Second || until > DefaultTTL {
					t.Errorf("expires in %s, want about %s", until, DefaultTTL)
				}
				got, err := tk.Redeem(context.Background(), issued.Value)
				if err != nil || got != ada {
					t.Fatalf("redeem = %+v, %v; want %+v", got, err, ada)
				}
				if _, err := tk.Redeem(context.Background(), issued.Value); !errors.Is(err, ErrInvalid) {
					t.Errorf("second redeem: err = %v, want ErrInvalid", err)
				}
			})
			t.Run("only_one_of_two_racing_redeemers_gets_it", func(t *testing.T) {
				tk, _ := New(newStore(t), 0)
				issued, _ := tk.Issue(context.Background(), ada)
				var wins atomic.Int32
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						if _, err := tk.Redeem(context.Background(), issued.Value); err == nil {
							wins.Add(1)
						}
					})
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Errorf("%d redeemers got the ticket, want 1", wins.Load())
				}
			})
			t.Run("refuses_an_expired_ticket", func(t *testing.T) {
				tk, _ := New(newStore(t), 50*time.Millisecond)
				issued, _ := tk.Issue(context.Background(), ada)
				time.Sleep(120 * time.Millisecond)
				if _, err := tk.Redeem(context.Background(), issued.Value); !errors.Is(err, ErrInvalid) {
					t.Errorf("redeem after the ttl: err = %v, want ErrInvalid", err)
				}
			})
			t.Run("refuses_what_it_never_issued", func(t *testing.T) {
				tk, _ := New(newStore(t), 0)
				issued, _ := tk.Issue(context.Background(), ada)
				other := []byte(issued.Value)
				other[0] ^= 1 // still 43 characters of base64url, never issued
				for _, v := range []string{"", "x", string(other), issued.Value + "A"} {
					if _, err := tk.Redeem(context.Background(), v); !errors.Is(err, ErrInvalid) {
						t.Errorf("redeem %q: err = %v, want ErrInvalid", v, err)
					}
				}
			})
			t.Run("issues_none_to_edutrack_itself", func(t *testing.T) {
				tk, _ := New(newStore(t), 0)
				if _, err := tk.Issue(context.Background(), domain.Actor{UserID: "reactor"}); err == nil {
					t.Error("issued a ticket to an actor without a role")
				}
			})
		})
	}
}

func TestMemorySweepsExpiredTickets(t *testing.T) {
	m := NewMemory()
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	for i := range 100 {
		m.Put(context.Background(), strings.Repeat("k", i+1), ada, time.Second)
	}
	now = now.Add(2 * time.Second)
	m.Put(context.Background(), "fresh", ada, time.Second)
	if len(m.tickets) != 1 {
		t.Errorf("%d tickets held after the others expired, want 1", len(m.tickets))
	}
}

// failing is a store that does not answer.
type failing struct{}

func (failing) Put(context.Context, string, domain.Actor, time.Duration) error {
	return errors.New("down")
}
func (failing) Take(context.Context, string) (domain.Actor, error) {
	return domain.Actor{}, errors.New("down")
}

func TestAuthenticate(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tk, _ := New(NewMemory(), 0)
	// The bearer authenticator stands for the token check: it admits "Bearer good" as bob.
	bearer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer good" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), domain.Actor{UserID: "bob", Role: domain.Admin})))
		})
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := auth.FromContext(r.Context())
		w.Write([]byte(a.UserID))
	})
	h := Authenticate(tk, bearer, log)(echo)
	call := func(h http.Handler, target, authorization string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	issued, _ := tk.Issue(context.Background(), ada)
	if code, body := call(h, "/live?ticket="+issued.Value, ""); code != http.StatusOK || body != "ada" {
		t.Errorf("with a ticket: %d %q, want 200 as ada", code, body)
	}
	if code, _ := call(h, "/live?ticket="+issued.Value, ""); code != http.StatusUnauthorized {
		t.Errorf("the same ticket again: %d, want 401", code)
	}
	if code, body := call(h, "/live", "Bearer good"); code != http.StatusOK || body != "bob" {
		t.Errorf("with a header: %d %q, want 200 as bob", code, body)
	}
	if code, _ := call(h, "/live", ""); code != http.StatusUnauthorized {
		t.Errorf("with neither: %d, want the bearer authenticator's 401", code)
	}
	second, _ := tk.Issue(context.Background(), ada)
	if code, _ := call(h, "/live?ticket="+second.Value, "Bearer good"); code != http.StatusBadRequest {
		t.Errorf("with both: %d, want 400", code)
	}
	if code, _ := call(h, "/live?ticket="+second.Value+"&ticket="+second.Value, ""); code != http.StatusBadRequest {
		t.Errorf("with two tickets: %d, want 400", code)
	}
	for _, q := range []string{"access_token=x", "token=x", "Access_Token=x", "ticket=" + second.Value + "&jwt=x"} {
		if code, _ := call(h, "/live?"+q, ""); code != http.StatusBadRequest {
			t.Errorf("with %s: %d, want 400", q, code)
		}
	}
	down, _ := New(failing{}, 0)
	if code, _ := call(Authenticate(down, bearer, log)(echo), "/live?ticket="+second.Value, ""); code != http.StatusServiceUnavailable {
		t.Errorf("with the store down: %d, want 503", code)
	}
}
