// Package readmodel defines the documents the read API serves and the projectors build: their
// collections, their JSON shapes and the fields queries use. It is the contract between
// projections (which write them) and readapi (which reads them).
package documents

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Collections of the public read models. Each detail, stats and dashboard document's body is
// exactly the JSON its route answers, so a cached read is served as stored.
const (
	Catalog       = "catalog"        // CatalogEntry, one per course; the catalog lists the published ones
	CourseDetails = "course_details" // CourseDetail, one per course
	Stats         = "course_stats"   // CourseStats, one per course
	Dashboards    = "dashboards"     // Dashboard, one per learner
	Rosters       = "rosters"        // RosterEntry, one per learner and course; id RosterID
	Certificates  = "certificates"   // Certificate, one per certificate id
)

// Projection names, and the read models each one builds.
const (
	CoursesProjection  = "courses"  // Catalog, CourseDetails, Stats
	LearnersProjection = "learners" // Dashboards, Rosters, Certificates
)

// Instructor is the instructor as a course shows them.
type Instructor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CatalogItem is one course of the catalog listing.
type CatalogItem struct {
	ID              string     `json:"id"`
	Title           string     `json:"title"`
	Category        string     `json:"category"`
	Level           string     `json:"level"`
	Instructor      Instructor `json:"instructor"`
	ModuleCount     int        `json:"moduleCount"`
	EnrollmentCount int        `json:"enrollmentCount"`
	CompletionRate  float64    `json:"completionRate"`
	PublishedAt     *time.Time `json:"publishedAt"`
	// Image is the course's image, or nil when it has none.
	Image *CourseImage `json:"image"`
}

// CatalogEntry is a catalog document: the item and the fields queries filter and sort on.
type CatalogEntry struct {
	CatalogItem
	Status       string   `json:"status"`
	InstructorID string   `json:"instructorId"`
	TitleWords   []string `json:"titleWords"`
	TitleKey     string   `json:"titleKey"`
	PublishedN   int64    `json:"publishedN"`
}

// Module is one module of a course.
type Module struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Files are the module's files, in the order they were attached; absent while it has none,
	// so that the details of a course without files read as they did before files existed.
	Files []ModuleFile `json:"files,omitempty"`
}

// ModuleFile is a file attached to a module. Its bytes are fetched from FilePath, which
// answers a short-lived link to those allowed to read them.
type ModuleFile struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// FilePath is the read API's route of a module file.
func FilePath(courseID, moduleID, fileID string) string {
	return "/v1/courses/" + courseID + "/modules/" + moduleID + "/files/" + fileID
}

// CourseDetail is everything about one course.
type CourseDetail struct {
	CatalogItem
	Description     string    `json:"description"`
	Status          string    `json:"status"`
	Modules         []Module  `json:"modules"`
	CompletionCount int       `json:"completionCount"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// CourseStats is the instructor's view of one course.
type CourseStats struct {
	CourseID          string              `json:"courseId"`
	Enrolled          int                 `json:"enrolled"`
	Active            int                 `json:"active"`
	Completed         int                 `json:"completed"`
	Withdrawn         int                 `json:"withdrawn"`
	CompletionRate    float64             `json:"completionRate"`
	ModuleCompletions []ModuleCompletions `json:"moduleCompletions"`
}

// ModuleCompletions is how many learners completed one module; stats list them in the course's
// order.
type ModuleCompletions struct {
	ModuleID    string `json:"moduleId"`
	Completions int    `json:"completions"`
}

// Enrollment is one course on a learner's dashboard.
type Enrollment struct {
	CourseID         string     `json:"courseId"`
	Title            string     `json:"title"`
	Status           string     `json:"status"`
	Progress         float64    `json:"progress"`
	CompletedModules []string   `json:"completedModules"`
	ModuleCount      int        `json:"moduleCount"`
	EnrolledAt       time.Time  `json:"enrolledAt"`
	CompletedAt      *time.Time `json:"completedAt"`
	LastActivityAt   time.Time  `json:"lastActivityAt"`
	// Certificate is the certificate of a completed course once it is issued, else nil.
	Certificate *CertificateRef `json:"certificate"`
}

// CertificateRef is an enrollment's certificate, as a dashboard shows it.
type CertificateRef struct {
	ID       string    `json:"id"`
	IssuedAt time.Time `json:"issuedAt"`
	// URL is the route of the PDF, CertificatePath.
	URL string `json:"url"`
}

// CertificatePath is the read API's route of the PDF of learner's certificate of course.
func CertificatePath(learnerID, courseID string) string {
	return "/v1/learners/" + learnerID + "/certificates/" + courseID
}

// Verification is what anyone may learn of a certificate: what an employer checks a copy
// against, and nothing else.
type Verification struct {
	LearnerName string    `json:"learnerName"`
	CourseTitle string    `json:"courseTitle"`
	CompletedAt time.Time `json:"completedAt"`
	SHA256      string    `json:"sha256"`
}

// Certificate is a certificates document: the verification, with the learner's name and the
// course's title as they were when it was issued (as the PDF shows them), and where the PDF is.
type Certificate struct {
	Verification
	CertificateID string    `json:"certificateId"`
	LearnerID     string    `json:"learnerId"`
	CourseID      string    `json:"courseId"`
	BlobKey       string    `json:"blobKey"`
	IssuedAt      time.Time `json:"issuedAt"`
}

// Dashboard is one learner's view of their learning.
type Dashboard struct {
	LearnerID   string       `json:"learnerId"`
	Name        string       `json:"name"`
	Enrollments []Enrollment `json:"enrollments"`
}

// RosterItem is one learner of a course, as the roster lists them.
type RosterItem struct {
	LearnerID   string     `json:"learnerId"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	Progress    float64    `json:"progress"`
	EnrolledAt  time.Time  `json:"enrolledAt"`
	CompletedAt *time.Time `json:"completedAt"`
}

// RosterEntry is a roster document: the item and the fields queries filter and sort on.
type RosterEntry struct {
	RosterItem
	CourseID    string `json:"courseId"`
	EnrolledAtN int64  `json:"enrolledAtN"`
}

// RosterID is the id of the roster document of learner in course.
func RosterID(courseID, learnerID string) string { return courseID + "/" + learnerID }

// Words splits a title into the lower-case words the catalog's q parameter matches.
func Words(s string) []string {
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	seen := make(map[string]bool, len(fields))
	out := fields[:0]
	for _, f := range fields {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// Rate is part / whole, or 0 when whole is 0.
func Rate(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// Snapshots of long streams, which asOf starts from instead of a stream's first event. Only the
// history reads them, from the store (never the cache); they are served to no client.
const (
	SnapshotsProjection = "snapshots" // Snapshots, SnapshotIndex
	Snapshots           = "snapshots" // Snapshot, id SnapshotID
	SnapshotIndex       = "snapshot_index"
)

// SnapshotEvery is the stream version interval of snapshots: the state after events 100, 200,
// ... of a learner or course stream, so asOf replays fewer than 100 events of each stream it reads.
const SnapshotEvery = 100

// A snapshot document (collection Snapshots) is a replay's state of a stream after the event
// at one version: the aggregate's own State, as the JSON object it is. What it stands for is in
// its stream's SnapshotList.

// SnapshotList is the index document of a stream's snapshots, id the stream: which versions
// have one, oldest first, so asOf picks one with one read.
type SnapshotList struct {
	Taken []SnapshotRef `json:"taken"`
}

// SnapshotRef describes one snapshot: the event at Version after which it was taken, its
// position, when it was recorded (Unix nanoseconds), and its hash in the log's chain. A snapshot
// stands for the events up to it only while the log still holds that hash there.
type SnapshotRef struct {
	Version    uint64 `json:"version"`
	Position   uint64 `json:"position"`
	RecordedAt int64  `json:"recordedAt"`
	Hash       []byte `json:"hash"`
}

// SnapshotID is the id of stream's snapshot at version.
func SnapshotID(stream string, version uint64) string {
	return stream + "@" + strconv.FormatUint(version, 10)
}

// Image statuses: an uploaded image is processing until its variants are stored.
const (
	ImageProcessing = "processing"
	ImageReady      = "ready"
)

// CourseImage is a course's image, ready for srcset: the variants per format, narrowest first.
// While a new upload is processing, the variants are those of the image before it, if any.
type CourseImage struct {
	Status string `json:"status"`
	// Width and Height are those of the widest variant, for the page's layout.
	Width   int                      `json:"width,omitempty"`
	Height  int                      `json:"height,omitempty"`
	Formats map[string][]ImageSource `json:"formats"`
}

// ImageSource is one stored variant.
type ImageSource struct {
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// MediaPath is the route under which the read API serves media, and the start of every media
// URL a read model stores. A read process set to serve media from elsewhere (a CDN, a bucket)
// swaps this prefix for its base URL as it answers (MediaURLs).
const MediaPath = "/media/"

// mediaPrefix is where media blobs are kept in the bucket: the URL's path after MediaPath is the
// key after it.
const mediaPrefix = "media/"

// MediaBlobKey is the bucket key of the media at path (the URL's path after MediaPath).
func MediaBlobKey(path string) string { return mediaPrefix + path }

// MediaURL is the URL a read model stores for the media blob key.
func MediaURL(blobKey string) string { return MediaPath + strings.TrimPrefix(blobKey, mediaPrefix) }

// MediaURLs returns body with every stored media URL pointing under base (such as
// https://cdn.example.com/edutrack) in place of MediaPath; an empty base returns body as it is.
// The stored URLs are JSON values of "url" keys; a quote inside a JSON string is escaped, so no
// text a user wrote can look like one.
func MediaURLs(body []byte, base string) []byte {
	if base == "" {
		return body
	}
	return bytes.ReplaceAll(body, []byte(`"url":"`+MediaPath), []byte(`"url":"`+strings.TrimSuffix(base, "/")+"/"))
}
