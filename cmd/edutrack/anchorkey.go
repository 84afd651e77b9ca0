package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// The anchor key signs the embedded log's anchors (eventstore/sqlitelog/anchor.go). It must live
// outside the data directory: a key that travels with events.db (in a backup, a copied volume)
// lets whoever has the file sign forged anchors.

// userConfigDir is os.UserConfigDir read through getenv instead of the process's environment,
// so that a test, whose environment names no home, never reaches the real one. It is empty when
// the environment names no home.
func userConfigDir(getenv func(string) string) string {
	switch runtime.GOOS {
	case "windows":
		return getenv("AppData")
	case "darwin", "ios":
		if home := getenv("HOME"); home != "" {
			return filepath.Join(home, "Library", "Application Support")
		}
	default:
		if dir := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
			return dir
		}
		if home := getenv("HOME"); home != "" {
			return filepath.Join(home, ".config")
		}
	}
	return ""
}

// defaultAnchorKeyFile is where the embedded default keeps the key it generates.
func defaultAnchorKeyFile(configDir string) string {
	return filepath.Join(configDir, "edutrack", "anchor.key")
}

// readAnchorKeyFile returns the key in the file at path: its text without a trailing line end,
// as with the JWT key.
func readAnchorKeyFile(path string) ([]byte, error) { return readKeyFile(path, "the anchor key") }

// readKeyFile returns the key what in the file at path, of at least MinAnchorKeyLen bytes.
func readKeyFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key := bytes.TrimRight(b, "\r\n")
	if len(key) < sqlitelog.MinAnchorKeyLen {
		return nil, fmt.Errorf("%s in %s has %d bytes; want at least %d", what, path, len(key), sqlitelog.MinAnchorKeyLen)
	}
	return key, nil
}

// readOwnKey reads a generated key, refusing it when others than its owner can read it.
func readOwnKey(path, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Windows does not keep Unix permission bits; there the directory's ACL protects the key.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o; only its owner may read it (chmod 600 it)", path, fi.Mode().Perm())
	}
	return readKeyFile(path, what)
}

// loadOrCreateAnchorKey returns the key kept at path, generating it if there is none: 32 random
// bytes as base64url text, mode 0600, in a directory of mode 0700. created tells which.
func loadOrCreateAnchorKey(path string) (key []byte, created bool, err error) {
	return loadOrCreateKey(path, "the anchor key")
}

// loadOrCreateKey is loadOrCreateAnchorKey for any key, named what in errors.
func loadOrCreateKey(path, what string) (key []byte, created bool, err error) {
	key, err = readOwnKey(path, what)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", what, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("generate %s: %w", what, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // CreateTemp makes it 0600
	if err != nil {
		return nil, false, fmt.Errorf("create %s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(base64.RawURLEncoding.AppendEncode(nil, raw), '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write %s: %w", what, err)
	}
	// Linking it into place lets a second process starting at the same time lose the race and
	// read the winner's key, never half a key.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("create %s: %w", what, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	key, err = readOwnKey(path, what)
	return key, err == nil, err
}

// within tells whether path is dir or lies inside it, following symbolic links as far as the
// paths exist.
func within(dir, path string) bool {
	d, p := resolvePath(dir), resolvePath(path)
	if d == "" || p == "" {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolvePath is path made absolute, with the links in the longest part of it that exists
// followed; empty if it cannot be made absolute.
func resolvePath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	for p, rest := abs, ""; ; {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs
		}
		rest, p = filepath.Join(filepath.Base(p), rest), parent
	}
}

// anchorKey is the key serve anchors the embedded log with: the configured one, else the one the
// embedded default keeps in the user's config dir, generated on first start. With neither the
// log goes unanchored, and the log says so at every start.
func anchorKey(a anchoring, log *slog.Logger) ([]byte, error) {
	switch {
	case a.key != nil:
		log.Info("event log anchor key", "key", a.keySource(), "key_id", sqlitelog.KeyID(a.key))
		return a.key, nil
	case a.defaultFile != "":
		key, created, err := loadOrCreateAnchorKey(a.defaultFile)
		if err != nil {
			return nil, fmt.Errorf("the event log's anchor key: %w", err)
		}
		if created {
			log.Warn("generated the event log's anchor key: back it up apart from the data dir; without it the log's anchors cannot be checked",
				"path", a.defaultFile, "key_id", sqlitelog.KeyID(key))
		} else {
			log.Info("event log anchor key", "key", a.defaultFile, "key_id", sqlitelog.KeyID(key))
		}
		return key, nil
	}
	log.Warn("the event log is not anchored: no anchor key is set (EDUTRACK_ANCHOR_KEY_FILE) and the environment names no home " +
		"to keep one in, so whoever can write events.db can rewrite its history undetected")
	return nil, nil
}

// logAnchor logs each anchor, so that the log pipeline keeps a copy of them outside the data dir:
// the one thing that shows the latest anchors deleted, or the file replaced by an older copy
// (edutrack audit verify --expect-anchor SEQ:MAC).
func logAnchor(log *slog.Logger) func(sqlitelog.Anchor) {
	return func(a sqlitelog.Anchor) {
		log.Info("event log anchored", "seq", a.Seq, "kind", string(a.Kind), "head", a.Head, "mac", hex.EncodeToString(a.MAC))
		if a.Seq == 1 && a.Head > 0 {
			log.Warn("the event log had no anchors yet: its events were checked by their hash chains and anchored as they are "+
				"(had it had anchors, they were deleted: compare with an anchor logged before, edutrack audit verify --expect-anchor SEQ:MAC)",
				"head", a.Head)
		}
	}
}
