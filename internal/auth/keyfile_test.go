package auth

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/edutrack/edutrack/domain"
)

func TestLoadOrCreateKey(t *testing.T) {
	t.Run("creates_a_private_key_on_first_start_and_reuses_it", func(t *testing.T) {
		dir := t.TempDir()
		first, err := LoadOrCreateKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) < MinKeyLen {
			t.Fatalf("key of %d bytes; want at least %d", len(first), MinKeyLen)
		}
		fi, err := os.Stat(filepath.Join(dir, KeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %04o; want 0600", fi.Mode().Perm())
		}
		again, err := LoadOrCreateKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("the second start made another key: every token would be refused after a restart")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("the data dir holds %d entries; want only %s", len(entries), KeyFileName)
		}
	})

	t.Run("makes_keys_that_differ_between_deployments", func(t *testing.T) {
		a, errA := LoadOrCreateKey(t.TempDir())
		b, errB := LoadOrCreateKey(t.TempDir())
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if bytes.Equal(a, b) {
			t.Fatal("two data dirs got the same key")
		}
	})

	t.Run("gives_processes_starting_together_one_key", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data") // not there yet either
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := LoadOrCreateKey(dir)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for _, k := range keys[1:] {
			if !bytes.Equal(k, keys[0]) {
				t.Fatal("concurrent starts returned different keys")
			}
		}
	})

	t.Run("refuses_a_key_file_others_can_read", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("Windows keeps no permission bits")
		}
		dir := t.TempDir()
		if _, err := LoadOrCreateKey(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, KeyFileName), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKey(dir); err == nil {
			t.Fatal("LoadOrCreateKey used a world-readable key")
		}
	})

	t.Run("signs_tokens_its_verifier_accepts", func(t *testing.T) {
		key, err := LoadOrCreateKey(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(key, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Mint(key, Claims{Subject: "u-ada", Role: domain.Learner})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadKeyFile(t *testing.T) {
	write := func(t *testing.T, content string) string {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secret := "a-school-secret-of-more-than-32-bytes"
	for _, content := range []string{secret, secret + "\n", secret + "\r\n"} {
		got, err := ReadKeyFile(write(t, content))
		if err != nil || string(got) != secret {
			t.Errorf("ReadKeyFile(%q) = %q, %v; want the secret without its line end", content, got, err)
		}
	}
	if _, err := ReadKeyFile(write(t, "too-short\n")); err == nil {
		t.Error("ReadKeyFile accepted a 9-byte key")
	}
	if _, err := ReadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadKeyFile accepted a missing file")
	}
}
