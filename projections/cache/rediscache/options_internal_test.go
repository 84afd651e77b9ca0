package rediscache

import (
	"testing"
	"time"
)

func TestClientOptions(t *testing.T) {
	t.Run("sets_short_timeouts_and_honours_the_context_deadline", func(t *testing.T) {
		o, err := clientOptions("redis://127.0.0.1:1/2")
		if err != nil {
			t.Fatal(err)
		}
		if o.DialTimeout != time.Second || o.ReadTimeout != 200*time.Millisecond || o.WriteTimeout != 200*time.Millisecond {
			t.Errorf("timeouts dial %s read %s write %s; want 1s 200ms 200ms", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
		}
		if o.DialerRetries != 1 {
			t.Errorf("DialerRetries = %d; want 1: retried dials outlive the operation", o.DialerRetries)
		}
		if !o.ContextTimeoutEnabled {
			t.Error("ContextTimeoutEnabled is off: a hung server would hold each call for ReadTimeout")
		}
		if o.PoolSize != 0 || o.DB != 2 || o.Addr != "127.0.0.1:1" {
			t.Errorf("pool size %d, db %d, addr %s; want go-redis's default pool (0), db 2, 127.0.0.1:1", o.PoolSize, o.DB, o.Addr)
		}
	})
	t.Run("keeps_what_the_url_sets", func(t *testing.T) {
		o, err := clientOptions("redis://127.0.0.1:1?dial_timeout=3s&read_timeout=1s&write_timeout=2s&pool_size=7")
		if err != nil {
			t.Fatal(err)
		}
		if o.DialTimeout != 3*time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != 2*time.Second || o.PoolSize != 7 {
			t.Errorf("dial %s read %s write %s pool %d; want the URL's 3s 1s 2s 7", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolSize)
		}
	})
}
