package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
)

func TestParseRole(t *testing.T) {
	for _, s := range []string{"learner", "instructor", "admin", "auditor"} {
		if r, err := domain.ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "admin "} {
		_, err := domain.ParseRole(s)
		if !errors.Is(err, domain.ErrUnknownRole) || domain.KindOf(err) != domain.Invalid {
			t.Errorf("ParseRole(%q): %v; want ErrUnknownRole, an invalid input", s, err)
		}
	}
}

func TestActorSystem(t *testing.T) {
	for _, a := range []domain.Actor{{}, {UserID: "reactor/certificates"}} {
		if !a.System() {
			t.Errorf("%+v does not count as EduTrack itself", a)
		}
	}
	for _, a := range []domain.Actor{{Role: domain.Admin}, {UserID: "ada", Role: domain.Learner}} {
		if a.System() {
			t.Errorf("%+v counts as EduTrack itself", a)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "ada", "c-101", "0", strings.Repeat("x", 64)} {
		if !domain.ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", "Ada", "a b", "a_b", "ä", "a/b", strings.Repeat("x", 65)} {
		if domain.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}
