package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// KeyFileName is the name of the signing key that LoadOrCreateKey keeps in the data directory.
const KeyFileName = "jwt.key"

// keyRandomBytes is the entropy of a generated key; it is stored as base64url text, so the key
// is 43 bytes long.
const keyRandomBytes = 32

// ReadKeyFile returns the HMAC key in the file at path: its text without a trailing line end,
// so a key written with echo or an editor is the same key as EDUTRACK_JWT_KEY.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read JWT key: %w", err)
	}
	key := bytes.TrimRight(b, "\r\n")
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("auth: the JWT key in %s has %d bytes; want at least %d", path, len(key), MinKeyLen)
	}
	return key, nil
}

// LoadOrCreateKey returns the signing key kept in dataDir/KeyFileName, generating it on first
// start (32 random bytes as base64url text, mode 0600). It refuses a key file that others than
// its owner can read: whoever reads it can mint admin tokens.
func LoadOrCreateKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, KeyFileName)
	key, err := readOwnKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create JWT key: %w", err)
	}
	if err := createKey(dataDir, path); err != nil {
		return nil, err
	}
	return readOwnKey(path)
}

func readOwnKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Windows does not keep Unix permission bits; there the directory's ACL protects the key.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("auth: %s has mode %04o; only its owner may read it (chmod 600 it)", path, fi.Mode().Perm())
	}
	return ReadKeyFile(path)
}

// createKey writes a new key to a temporary file and links it into place, so another process
// starting at the same time never reads half a key, and the first one to link wins.
func createKey(dir, path string) error {
	raw := make([]byte, keyRandomBytes)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("auth: generate JWT key: %w", err)
	}
	text := base64.RawURLEncoding.AppendEncode(nil, raw)
	tmp, err := os.CreateTemp(dir, "."+KeyFileName+"-*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("auth: create JWT key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(text, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auth: write JWT key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("auth: create JWT key: %w", err)
	}
	// Without syncing the directory a crash could lose the link after tokens were minted with
	// the key, and the next start would make another.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
