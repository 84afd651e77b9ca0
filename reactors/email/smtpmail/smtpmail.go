// Package smtpmail sends the emails of reactors/email over SMTP, with go-mail. The URL chooses
// the transport: smtp://host:port speaks STARTTLS when the server offers it and plain SMTP
// otherwise; smtp://host:port?tls=required refuses to send without STARTTLS; smtps://host:port
// speaks TLS from the first byte.
package smtpmail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/edutrack/edutrack/reactors/email"
)

// Config is how to reach the SMTP server and whom the emails come from.
type Config struct {
	// URL is smtp://host[:port][?tls=required] or smtps://host[:port]; the ports default to 587
	// and 465. Credentials never go in it.
	URL string
	// From is the sender, an address with an optional name: "EduTrack <noreply@school.example>".
	From string
	// Username and Password, when Username is set, log in with the strongest mechanism the
	// server offers. go-mail refuses PLAIN and LOGIN over an unencrypted connection.
	Username, Password string
	// RootCAs verify the server's certificate; nil uses the system's.
	RootCAs *x509.CertPool
	// Timeout bounds dialing and each SMTP command (default 30s).
	Timeout time.Duration
}

// Mailer sends email over SMTP. It dials the server for each message.
type Mailer struct {
	cfg     Config
	from    *mail.Address
	host    string
	port    int
	ssl     bool
	policy  gomail.TLSPolicy
	timeout time.Duration
}

// Endpoint is what a URL says about the server: host, port, and whether TLS starts at once (ssl)
// or by STARTTLS, required or when offered.
type Endpoint struct {
	Host        string
	Port        int
	SSL         bool
	TLSRequired bool
}

// ParseURL reads an SMTP URL, refusing what it does not understand.
func ParseURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, errors.New("want smtp://host:port or smtps://host:port")
	}
	var ep Endpoint
	switch u.Scheme {
	case "smtp":
		ep.Port = 587
	case "smtps":
		ep.Port, ep.SSL = 465, true
	default:
		return Endpoint{}, errors.New("want smtp://host:port or smtps://host:port")
	}
	if u.User != nil {
		return Endpoint{}, errors.New("credentials do not go in the URL: set EDUTRACK_SMTP_USERNAME_FILE and EDUTRACK_SMTP_PASSWORD_FILE")
	}
	if ep.Host = u.Hostname(); ep.Host == "" {
		return Endpoint{}, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if ep.Port, err = strconv.Atoi(p); err != nil || ep.Port <= 0 || ep.Port > 65535 {
			return Endpoint{}, fmt.Errorf("port %q: want 1 to 65535", p)
		}
	}
	if u.Path != "" && u.Path != "/" {
		return Endpoint{}, errors.New("an SMTP URL has no path")
	}
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return Endpoint{}, fmt.Errorf("unknown parameter %q: only tls=required", k)
		}
	}
	switch q.Get("tls") {
	case "":
	case "required":
		if ep.SSL {
			return Endpoint{}, errors.New("tls=required is for smtp://: smtps:// always speaks TLS")
		}
		ep.TLSRequired = true
	default:
		return Endpoint{}, fmt.Errorf("tls=%q: the only value is required", q.Get("tls"))
	}
	return ep, nil
}

// New returns a Mailer, or the problem with cfg.
func New(cfg Config) (*Mailer, error) {
	ep, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("SMTP URL: %w", err)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender %q: %w", cfg.From, err)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("an SMTP password without a username")
	}
	m := &Mailer{cfg: cfg, from: from, host: ep.Host, port: ep.Port, ssl: ep.SSL, timeout: cfg.Timeout}
	if m.timeout <= 0 {
		m.timeout = 30 * time.Second
	}
	// go-mail's default policy is mandatory STARTTLS; ours is what the URL says, set every time.
	m.policy = gomail.TLSOpportunistic
	if ep.TLSRequired {
		m.policy = gomail.TLSMandatory
	}
	return m, nil
}

// Send sends m, and returns once the server has accepted it.
func (s *Mailer) Send(ctx context.Context, m email.Message) error {
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.AddToFormat(m.To.Name, m.To.Address); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSPolicy(s.policy),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}),
	}
	if s.ssl {
		opts = append(opts, gomail.WithSSL())
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send over SMTP to %s: %w", net.JoinHostPort(s.host, strconv.Itoa(s.port)), err)
	}
	return nil
}
