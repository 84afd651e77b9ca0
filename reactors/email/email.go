// Package email sends the emails reactors ask for: the job that confirms an enrollment, what it
// reads of the learner and the course, its templates, and the port it sends mail through.
package email

import (
	"context"
	"errors"
	"net/mail"
)

// Message is one email, ready to send.
type Message struct {
	// ID is the Message-ID without its angle brackets. It is derived from the job, so a copy sent
	// again after a crash carries the same one, and a receiver can tell it is a resend.
	ID      string
	To      mail.Address
	Subject string
	Text    string
	HTML    string
}

// Mailer sends mail. The SMTP adapter (smtpmail) implements it.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// ErrNoRecipient means the learner has no email address to write to.
var ErrNoRecipient = errors.New("the learner has no email address")
