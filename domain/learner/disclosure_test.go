package learner_test

import (
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

func disclose(d learner.Disclosure) func(*learner.Learner) (bool, error) {
	return func(l *learner.Learner) (bool, error) { return false, l.RecordDisclosure(d, t1) }
}

func TestRecordDisclosure(t *testing.T) {
	auditor := learner.Disclosure{RecipientID: "u-audit", RecipientRole: "auditor", Record: learner.RecordHistory, Reason: "annual review"}
	with := func(change func(*learner.Disclosure)) learner.Disclosure {
		d := auditor
		change(&d)
		return d
	}
	run(t, []testCase{
		{
			name: "records who read what and why",
			when: disclose(auditor),
			then: []domain.Event{learner.DisclosureRecorded{LearnerID: id, RecipientID: "u-audit", RecipientRole: "auditor",
				Record: learner.RecordHistory, Reason: "annual review", At: t1}},
		},
		{
			name:  "records a read beside the learner's progress without changing it",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t0)},
			when:  disclose(with(func(d *learner.Disclosure) { d.Record, d.Reason = learner.RecordDashboard, "" })),
			then: []domain.Event{learner.DisclosureRecorded{LearnerID: id, RecipientID: "u-audit", RecipientRole: "auditor",
				Record: learner.RecordDashboard, At: t1}},
		},
		{
			name: "records nothing when the learner reads their own records",
			when: disclose(with(func(d *learner.Disclosure) { d.RecipientID = id })),
		},
		{
			name: "refuses a disclosure without a recipient", when: disclose(with(func(d *learner.Disclosure) { d.RecipientID = "" })),
			kind: domain.Invalid, field: "recipientId",
		},
		{
			name: "refuses a disclosure without a role", when: disclose(with(func(d *learner.Disclosure) { d.RecipientRole = "" })),
			kind: domain.Invalid, field: "recipientRole",
		},
		{
			name: "refuses a record it does not know", when: disclose(with(func(d *learner.Disclosure) { d.Record = "grades" })),
			kind: domain.Invalid, field: "record",
		},
		{
			name: "refuses a reason over the limit",
			when: disclose(with(func(d *learner.Disclosure) { d.Reason = strings.Repeat("é", learner.MaxReasonLen+1) })),
			kind: domain.Invalid, field: "reason",
		},
		{
			name: "refuses a reason with control characters", when: disclose(with(func(d *learner.Disclosure) { d.Reason = "ok\nforged line" })),
			kind: domain.Invalid, field: "reason",
		},
	})
}
