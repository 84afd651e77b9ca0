package learner_test

import (
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

func disclose(d learner.Disclosure) func(*attempt) error {
	return func(a *attempt) error { return a.RecordDisclosure(d, t1) }
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
			Name: "records who read what and why",
			When: disclose(auditor),
			Then: []domain.Event{learner.DisclosureRecorded{LearnerID: id, RecipientID: "u-audit", RecipientRole: "auditor",
				Record: learner.RecordHistory, Reason: "annual review", At: t1}},
		},
		{
			Name:  "records a read beside the learner's progress without changing it",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t0)},
			When:  disclose(with(func(d *learner.Disclosure) { d.Record, d.Reason = learner.RecordDashboard, "" })),
			Then: []domain.Event{learner.DisclosureRecorded{LearnerID: id, RecipientID: "u-audit", RecipientRole: "auditor",
				Record: learner.RecordDashboard, At: t1}},
		},
		{
			Name: "records nothing when the learner reads their own records",
			When: disclose(with(func(d *learner.Disclosure) { d.RecipientID = id })),
		},
		{
			Name: "refuses a disclosure without a recipient", When: disclose(with(func(d *learner.Disclosure) { d.RecipientID = "" })),
			Kind: domain.Invalid, Field: "recipientId",
		},
		{
			Name: "refuses a disclosure without a role", When: disclose(with(func(d *learner.Disclosure) { d.RecipientRole = "" })),
			Kind: domain.Invalid, Field: "recipientRole",
		},
		{
			Name: "refuses a record it does not know", When: disclose(with(func(d *learner.Disclosure) { d.Record = "grades" })),
			Kind: domain.Invalid, Field: "record",
		},
		{
			Name: "refuses a reason over the limit",
			When: disclose(with(func(d *learner.Disclosure) { d.Reason = strings.Repeat("é", learner.MaxReasonLen+1) })),
			Kind: domain.Invalid, Field: "reason",
		},
		{
			Name: "refuses a reason with control characters", When: disclose(with(func(d *learner.Disclosure) { d.Reason = "ok\nforged line" })),
			Kind: domain.Invalid, Field: "reason",
		},
	})
}
