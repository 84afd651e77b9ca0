package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/modulefiles"
)

// The module files' defaults: 100 MiB covers slides, documents and short lectures; longer
// videos need EDUTRACK_FILE_MAX_SIZE raised (and completion reads the whole file back within
// the request's deadline, so EDUTRACK_REQUEST_TIMEOUT with it).
const defaultFileMaxSize int64 = 100 << 20

// defaultFileTypes are the types of course material: documents, slides, archives, video, audio
// and pictures. HTML and SVG are left out: a browser runs what they hold.
var defaultFileTypes = []string{
	"application/pdf",
	"application/zip",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"video/mp4", "video/webm", "audio/mpeg",
	"image/png", "image/jpeg", "image/gif", "image/webp",
	"text/plain",
}

// signedFilesPath is the route that receives and serves module files on a file:// blob store,
// where the links are EduTrack's own.
const signedFilesPath = "/v1/files/signed"

// fileConfig is how module files are accepted and linked to.
type fileConfig struct {
	limits                       course.FileLimits
	uploadExpiry, downloadExpiry time.Duration
	// urlKey signs the links of a file:// store: EDUTRACK_FILE_URL_KEY's, or the one in
	// EDUTRACK_FILE_URL_KEY_FILE; nil to use defaultKeyFile's, generated there on first start.
	urlKey         []byte
	urlKeyFile     string
	defaultKeyFile string
}

func defaultFileURLKeyFile(configDir string) string {
	return filepath.Join(configDir, "edutrack", "file-url.key")
}

// fileTypes reads EDUTRACK_FILE_TYPES: media types without parameters, comma-separated.
func fileTypes(list string) ([]string, error) {
	var types []string
	for _, t := range strings.Split(list, ",") {
		t = strings.ToLower(strings.TrimSpace(t))
		main, sub, ok := strings.Cut(t, "/")
		if !ok || main == "" || sub == "" || strings.ContainsAny(t, " ;\"") {
			return nil, fmt.Errorf("%q is not a media type such as application/pdf", t)
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types, nil
}

// fileProblems are the problems of the module files' settings.
func (s settings) fileProblems() []error {
	var problems []error
	add := func(err error) { problems = append(problems, err) }
	if n, err := strconv.ParseInt(s.fileMaxSize, 10, 64); err != nil || n < 1 {
		add(fmt.Errorf("EDUTRACK_FILE_MAX_SIZE %q: want a number of bytes, such as %d for 100 MiB", s.fileMaxSize, defaultFileMaxSize))
	}
	if _, err := fileTypes(s.fileTypes); err != nil {
		add(fmt.Errorf("EDUTRACK_FILE_TYPES: %w", err))
	}
	for _, d := range []struct{ name, value string }{{"EDUTRACK_FILE_UPLOAD_EXPIRY", s.fileUploadExpiry},
		{"EDUTRACK_FILE_DOWNLOAD_EXPIRY", s.fileDownloadExpiry}} {
		// Signed URLs count in seconds, and S3 caps them at 7 days.
		if v, err := time.ParseDuration(d.value); err != nil || v < time.Second || v > 7*24*time.Hour {
			add(fmt.Errorf("%s %q: want a duration from 1s to 168h", d.name, d.value))
		}
	}
	switch {
	case s.fileURLKey != "" && s.fileURLKeyFile != "":
		add(errors.New("EDUTRACK_FILE_URL_KEY and EDUTRACK_FILE_URL_KEY_FILE: set one of them"))
	case s.fileURLKey != "" && len(s.fileURLKey) < 32:
		add(fmt.Errorf("EDUTRACK_FILE_URL_KEY: %d bytes; want at least 32", len(s.fileURLKey)))
	case s.fileURLKeyFile != "":
		if _, err := readKeyFile(s.fileURLKeyFile, "the file URL key"); err != nil {
			add(fmt.Errorf("EDUTRACK_FILE_URL_KEY_FILE: %w", err))
		}
		if within(s.dataDir, s.fileURLKeyFile) {
			add(fmt.Errorf("EDUTRACK_FILE_URL_KEY_FILE %s is inside the data dir %s: keep it elsewhere, or whoever has a copy of the data can sign links to every file",
				s.fileURLKeyFile, s.dataDir))
		}
	}
	return problems
}

// fileConfig turns the valid settings into the module files' configuration.
func (s settings) fileConfig() (fileConfig, error) {
	c := fileConfig{}
	c.limits.MaxSize, _ = strconv.ParseInt(s.fileMaxSize, 10, 64)
	c.limits.Types, _ = fileTypes(s.fileTypes)
	c.uploadExpiry, _ = time.ParseDuration(s.fileUploadExpiry)
	c.downloadExpiry, _ = time.ParseDuration(s.fileDownloadExpiry)
	switch {
	case s.fileURLKey != "":
		c.urlKey = []byte(s.fileURLKey)
	case s.fileURLKeyFile != "":
		key, err := readKeyFile(s.fileURLKeyFile, "the file URL key")
		if err != nil {
			return c, fmt.Errorf("EDUTRACK_FILE_URL_KEY_FILE: %w", err)
		}
		c.urlKey, c.urlKeyFile = key, s.fileURLKeyFile
	case s.configDir != "":
		c.defaultKeyFile = defaultFileURLKeyFile(s.configDir)
	}
	return c, nil
}

// fileURLSigner signs the links of a file:// store, pointing at signedFilesPath: under
// EDUTRACK_PUBLIC_URL when it is set, else relative to the API, which clients resolve against
// the address they called. Its key is kept like the anchor key, outside the data dir: anyone
// holding it can sign a link to any file.
func fileURLSigner(cfg config, log *slog.Logger) (*fileblob.URLSignerHMAC, error) {
	base := &url.URL{Path: signedFilesPath}
	if cfg.publicURL != nil {
		base = cfg.publicURL.JoinPath(signedFilesPath)
	}
	key := cfg.files.urlKey
	switch {
	case key != nil:
	case cfg.files.defaultKeyFile != "":
		var created bool
		var err error
		if key, created, err = loadOrCreateKey(cfg.files.defaultKeyFile, "the file URL key"); err != nil {
			return nil, err
		}
		if created {
			log.Info("generated the key of module files' links", "path", cfg.files.defaultKeyFile)
		}
	default:
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		log.Warn("no key for module files' links (EDUTRACK_FILE_URL_KEY_FILE) and no home to keep one in: " +
			"a key of this run signs them, so links given out before a restart stop working")
	}
	return fileblob.NewURLSignerHMAC(base, key), nil
}

// openModuleFiles makes the store of module files over the blob bucket, and on a file://
// store mounts the signed route its links point at.
func (p *process) openModuleFiles(ctx context.Context) error {
	bucket, err := p.blobBucket(ctx)
	if err != nil {
		return err
	}
	opts := modulefiles.Options{UploadExpiry: p.cfg.files.uploadExpiry, DownloadExpiry: p.cfg.files.downloadExpiry}
	if p.cfg.blobS3 == nil {
		dir := p.blobDir()
		opts.Written = func(key string) error { return privateFile(dir, key) }
	}
	if p.files, err = modulefiles.New(bucket, opts); err != nil {
		return err
	}
	if p.signer != nil {
		route := p.files.Route(p.signer, p.log)
		p.signed.Get(signedFilesPath, route)
		p.signed.Put(signedFilesPath, route)
	}
	return nil
}
