package learner

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edutrack/edutrack/domain"
)

// Record names the part of a learner's records a disclosure concerns.
type Record string

// The records the read API discloses.
const (
	RecordDashboard Record = "dashboard"
	RecordHistory   Record = "history"
	RecordStateAsOf Record = "history.asOf"
	RecordXAPI      Record = "history.xapi"
	// RecordCertificate is the PDF of a certificate.
	RecordCertificate Record = "certificate"
)

func (r Record) valid() bool {
	switch r {
	case RecordDashboard, RecordHistory, RecordStateAsOf, RecordXAPI, RecordCertificate:
		return true
	}
	return false
}

const (
	// MaxReasonLen caps a disclosure's reason, in characters: it is kept forever.
	MaxReasonLen = 500
	// maxRecipientLen is OpenID Connect's bound on a subject; roles are short words.
	maxRecipientLen = 255
	maxRoleLen      = 32
)

// Disclosure is one read of a learner's records by someone else.
type Disclosure struct {
	RecipientID   string
	RecipientRole string
	Record        Record
	Reason        string
}

// RecordDisclosure records that d.RecipientID read the learner's d.Record. The learner reading
// their own records discloses nothing and records nothing. It returns an Invalid error on
// "recipientId", "recipientRole", "record" or "reason".
func (l *Learner) RecordDisclosure(d Disclosure, at time.Time) error {
	if d.RecipientID == "" || len(d.RecipientID) > maxRecipientLen {
		return domain.Invalidf("recipientId", "must be 1 to %d bytes", maxRecipientLen)
	}
	if d.RecipientRole == "" || len(d.RecipientRole) > maxRoleLen {
		return domain.Invalidf("recipientRole", "must be 1 to %d bytes", maxRoleLen)
	}
	if !d.Record.valid() {
		return domain.Invalidf("record", "must be %s, %s, %s, %s or %s", RecordDashboard, RecordHistory, RecordStateAsOf, RecordXAPI,
			RecordCertificate)
	}
	if err := validateReason(d.Reason); err != nil {
		return err
	}
	if d.RecipientID == l.id {
		return nil
	}
	l.record(DisclosureRecorded{LearnerID: l.id, RecipientID: d.RecipientID, RecipientRole: d.RecipientRole,
		Record: d.Record, Reason: strings.TrimSpace(d.Reason), At: at})
	return nil
}

// validateReason accepts printable text: the reason is shown to the learner and to auditors,
// and a control character could forge lines in what displays it.
func validateReason(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxReasonLen {
		return domain.Invalidf("reason", "must be at most %d characters of UTF-8 text", MaxReasonLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return domain.Invalidf("reason", "must not hold control characters")
		}
	}
	return nil
}
