package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
)

// newTokenCmd is `edutrack token`: it mints a bearer token with the key serve would verify it
// with: EDUTRACK_JWT_KEY, EDUTRACK_JWT_KEY_FILE, or the key in the data dir. It prints only the
// token, so that a script can take it: TOKEN=$(edutrack token --sub ada --role learner).
func newTokenCmd(getenv func(string) string) *cobra.Command {
	var (
		sub, role string
		ttl       time.Duration
	)
	// serve's settings decide which key, issuer and audience its tokens need; the flags are
	// those of the settings that a token is made with.
	s := readSettings(getenv)
	cmd := &cobra.Command{
		Use:   "token --sub ID --role ROLE",
		Short: "mint a bearer token signed with the configured key",
		Args:  noArgs("token: "),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := s.config()
			if err != nil {
				return fmt.Errorf("token: %w", err)
			}
			if sub == "" || role == "" {
				return usageError{errors.New("token: --sub and --role are required")}
			}
			if !domain.ValidID(sub) {
				return fmt.Errorf("token: --sub %q is no user id: ids are 1 to 64 characters of a-z, 0-9 and -", sub)
			}
			r, err := domain.ParseRole(role)
			if err != nil {
				return fmt.Errorf("token: %w", err)
			}
			token, err := mint(cfg, sub, r, ttl)
			if err != nil {
				return fmt.Errorf("token: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	cmd.Flags().StringVar(&sub, "sub", "", "the caller's user id (the token's subject)")
	cmd.Flags().StringVar(&role, "role", "", "learner, instructor, admin or auditor")
	cmd.Flags().DurationVar(&ttl, "ttl", auth.DefaultTTL, "how long the token is valid")
	s.addFlags(cmd.Flags(), "data-dir", "jwt-key-file", "jwt-issuer", "jwt-audience")
	return cmd
}

// mint signs a token for sub in role with the key, issuer and audience serve uses under cfg.
func mint(cfg config, sub string, role domain.Role, ttl time.Duration) (string, error) {
	a := cfg.access
	switch {
	case a.disabled:
		return "", errors.New("EDUTRACK_AUTH=disabled: the server takes no tokens")
	case a.oidcIssuer != "":
		return "", errors.New("EDUTRACK_OIDC_ISSUER is set: tokens come from the OIDC provider")
	case a.roleClaim != auth.DefaultRoleClaim:
		return "", fmt.Errorf("the server reads roles from the %q claim; minted tokens carry %q", a.roleClaim, auth.DefaultRoleClaim)
	}
	key := a.jwtKey
	if key == nil {
		// Reading, not creating: a key made here, in a data dir the server does not use,
		// would mint tokens that server refuses.
		var err error
		if key, err = auth.ReadKeyFile(filepath.Join(cfg.dataDir, auth.KeyFileName)); err != nil {
			return "", fmt.Errorf("%w (start the server once to generate it, or set EDUTRACK_JWT_KEY)", err)
		}
	}
	return auth.Mint(key, auth.Claims{Subject: sub, Role: role, TTL: ttl, Issuer: a.issuer, Audience: a.audience, IssuedAt: time.Now()})
}

// cliSubject is the acting user of the operations the edutrack commands send to a server.
const cliSubject = "edutrack-cli"

// adminToken is the bearer token of an ops command that calls a running server's admin API
// (edutrack projections): EDUTRACK_TOKEN when set, else a five-minute admin token minted with
// the key the server uses, as `edutrack token` would. It is empty when authentication is
// disabled.
func adminToken(getenv func(string) string) (string, error) {
	if t := getenv("EDUTRACK_TOKEN"); t != "" {
		return t, nil
	}
	cfg, err := readSettings(getenv).config()
	if err != nil {
		return "", err
	}
	if cfg.access.disabled {
		return "", nil
	}
	return mint(cfg, cliSubject, domain.Admin, 5*time.Minute)
}
