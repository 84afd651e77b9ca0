// Package domaintest holds what the tests of the aggregates share: the given / when / then
// harness, the check of a domain error, and the check of an aggregate's event types. Only tests
// import it. It lives outside domain/ because it compares with go-cmp, and the domain imports
// nothing but the standard library.
package domaintest

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain"
)

// Aggregate is what the harness needs of an aggregate: replaying an event and the events its
// command methods recorded.
type Aggregate interface {
	Apply(e domain.Event)
	Changes() []domain.Event
}

// Case is one given / when / then: given these events applied, when this command, then these
// events recorded, or this error (Err with errors.Is; Kind and Field for every error).
type Case[A Aggregate] struct {
	Name  string
	Given []domain.Event
	When  func(a A) error
	Then  []domain.Event
	Err   error
	Kind  domain.Kind
	Field string
	// Check, when set, checks more after the command, such as what it returned beside its error.
	Check func(t *testing.T, a A)
}

// Run runs each case as a subtest on an aggregate from newAggregate. Besides the error and the
// recorded events, it checks that replaying the given events and the recorded ones reaches the
// state that recording reached, as state sees it: a command method and a reload must agree.
func Run[A Aggregate, S any](t *testing.T, newAggregate func() A, state func(A) S, cases []Case[A]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			a := newAggregate()
			for _, e := range tc.Given {
				a.Apply(e)
			}
			err := tc.When(a)
			CheckErr(t, err, tc.Err, tc.Kind, tc.Field)
			if tc.Check != nil {
				tc.Check(t, a)
			}
			if diff := cmp.Diff(tc.Then, a.Changes(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			replayed := newAggregate()
			for _, e := range slices.Concat(tc.Given, a.Changes()) {
				replayed.Apply(e)
			}
			if diff := cmp.Diff(state(a), state(replayed)); diff != "" {
				t.Errorf("replayed state (-recorded +replayed):\n%s", diff)
			}
		})
	}
}

// CheckErr fails unless err is want (when want is set), a *domain.Error of kind, naming field.
// want == nil and kind == domain.Internal mean no error is expected; otherwise kind is checked
// whatever it is, so an error expected without a kind must carry none.
func CheckErr(t testing.TB, err, want error, kind domain.Kind, field string) {
	t.Helper()
	if want == nil && kind == domain.Internal {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want %v (kind %v, field %q)", want, kind, field)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
	if got := domain.KindOf(err); got != kind {
		t.Errorf("kind = %v, want %v (err %v)", got, kind, err)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("err %v is not a *domain.Error", err)
	}
	if de.Field != field {
		t.Errorf("field = %q, want %q", de.Field, field)
	}
}

// CheckEvents checks that every event type has a unique versioned name under prefix (such as
// "course.") and survives a JSON round trip with camelCase keys: the stored form of events,
// which never changes once events of a type exist.
func CheckEvents(t *testing.T, prefix string, events []domain.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range events {
		name := e.EventType()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".v1") || seen[name] {
			t.Errorf("event type %q: want unique, %q prefix, .v1 suffix", name, prefix)
		}
		seen[name] = true
		typ := reflect.TypeOf(e)
		if typ.Kind() != reflect.Struct {
			t.Errorf("%s: want a value type, got %v", name, typ)
			continue
		}
		for i := range typ.NumField() {
			tag := typ.Field(i).Tag.Get("json")
			if tag == "" || strings.ToLower(tag[:1]) != tag[:1] {
				t.Errorf("%s.%s: json tag %q is not camelCase", name, typ.Field(i).Name, tag)
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(typ)
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, back.Elem().Interface()); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
}
