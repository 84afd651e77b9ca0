package learner

import (
	"time"

	"github.com/edutrack/edutrack/domain"
)

// Enrolled: the learner enrolled in a course. Resumed is true when they had withdrawn from it
// before; their earlier progress counts again.
type Enrolled struct {
	LearnerID string    `json:"learnerId"`
	CourseID  string    `json:"courseId"`
	Resumed   bool      `json:"resumed"`
	At        time.Time `json:"at"`
}

// Withdrawn: the learner left a course they had not completed; their progress is kept.
type Withdrawn struct {
	LearnerID string    `json:"learnerId"`
	CourseID  string    `json:"courseId"`
	At        time.Time `json:"at"`
}

// ModuleCompleted: the learner completed one module of a course.
type ModuleCompleted struct {
	LearnerID string    `json:"learnerId"`
	CourseID  string    `json:"courseId"`
	ModuleID  string    `json:"moduleId"`
	At        time.Time `json:"at"`
}

// CourseCompleted: the learner completed every module the course had at that moment.
type CourseCompleted struct {
	LearnerID string    `json:"learnerId"`
	CourseID  string    `json:"courseId"`
	At        time.Time `json:"at"`
}

// DisclosureRecorded: someone other than the learner read the learner's records, and the school
// keeps who, when, what and why, as FERPA (34 CFR 99.32) asks. It changes nothing about the
// learner's progress; the learner can list these.
type DisclosureRecorded struct {
	LearnerID string `json:"learnerId"`
	// RecipientID and RecipientRole name who read: a token's subject and its role.
	RecipientID   string `json:"recipientId"`
	RecipientRole string `json:"recipientRole"`
	// Record is what they read.
	Record Record `json:"record"`
	// Reason is why, as the recipient gave it; it may be empty.
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// CertificateIssued: the learner received the certificate of a course they completed. The PDF
// is kept in blob storage under BlobKey; SHA256 (hex) is its digest, which an employer checks a
// copy against. CompletedAt is the completion the certificate attests.
type CertificateIssued struct {
	LearnerID     string    `json:"learnerId"`
	CourseID      string    `json:"courseId"`
	CertificateID string    `json:"certificateId"`
	BlobKey       string    `json:"blobKey"`
	SHA256        string    `json:"sha256"`
	CompletedAt   time.Time `json:"completedAt"`
	At            time.Time `json:"at"`
}

func (Enrolled) EventType() string           { return "learner.enrolled.v1" }
func (Withdrawn) EventType() string          { return "learner.withdrawn.v1" }
func (ModuleCompleted) EventType() string    { return "learner.module_completed.v1" }
func (CourseCompleted) EventType() string    { return "learner.course_completed.v1" }
func (DisclosureRecorded) EventType() string { return "learner.disclosure_recorded.v1" }
func (CertificateIssued) EventType() string  { return "learner.certificate_issued.v1" }

// Events returns one zero value of every event type this package defines, for a codec registry.
func Events() []domain.Event {
	return []domain.Event{Enrolled{}, Withdrawn{}, ModuleCompleted{}, CourseCompleted{}, DisclosureRecorded{}, CertificateIssued{}}
}

// StreamPrefix begins the id of every learner stream: the stream of learner id is StreamPrefix + id.
const StreamPrefix = "learner-"
