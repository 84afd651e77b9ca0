package sqlitelog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// private makes the database at path, and its WAL and shared-memory files, readable by their
// owner alone: the log holds names, emails and education records. SQLite creates the WAL and
// shared-memory files with the database file's mode, so creating that one 0600 covers them;
// chmod covers files an older version made with the umask's mode.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s private: %w", p, err)
		}
	}
	return nil
}
