package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"google.golang.org/grpc/codes"

	"github.com/edutrack/edutrack/eventstore"
)

func TestStreamState(t *testing.T) {
	tests := []struct {
		name     string
		expected eventstore.ExpectedVersion
		want     kurrentdb.StreamState
	}{
		{"any_is_any", eventstore.Any, kurrentdb.Any{}},
		{"no_stream_is_no_stream", eventstore.NoStream, kurrentdb.NoStream{}},
		{"exact_0_is_no_stream", eventstore.Exact(0), kurrentdb.NoStream{}},
		{"version_1_is_revision_0", eventstore.Exact(1), kurrentdb.Revision(0)},
		{"version_7_is_revision_6", eventstore.Exact(7), kurrentdb.Revision(6)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := streamState(tc.expected); got != tc.want {
				t.Errorf("streamState(%s) = %#v, want %#v", tc.expected, got, tc.want)
			}
		})
	}
	if got := stateAt(3); got != kurrentdb.Revision(2) {
		t.Errorf("stateAt(3) = %#v, want revision 2", got)
	}
}

func TestPositions(t *testing.T) {
	t.Run("a_position_is_the_commit_position", func(t *testing.T) {
		if got := position(kurrentdb.Position{Commit: 4096, Prepare: 4000}); got != 4096 {
			t.Errorf("position = %d, want the commit position 4096", got)
		}
	})
	t.Run("a_position_the_server_did_not_report_is_0", func(t *testing.T) {
		if got := position(kurrentdb.Position{Commit: unknownPosition, Prepare: unknownPosition}); got != 0 {
			t.Errorf("position of an unreported position = %d, want 0", got)
		}
	})
	t.Run("after_0_starts_at_the_beginning", func(t *testing.T) {
		if got := allFrom(fromPosition(0)); got != (kurrentdb.Start{}) {
			t.Errorf("start after 0 = %#v, want Start", got)
		}
	})
	t.Run("a_bare_position_stands_for_equal_commit_and_prepare", func(t *testing.T) {
		want := kurrentdb.Position{Commit: 1234, Prepare: 1234}
		if got := allFrom(fromPosition(1234)); got != want {
			t.Errorf("start after 1234 = %#v, want %#v", got, want)
		}
	})
	t.Run("order_is_commit_then_prepare", func(t *testing.T) {
		p := func(c, pr uint64) kurrentdb.Position { return kurrentdb.Position{Commit: c, Prepare: pr} }
		tests := []struct {
			a, b kurrentdb.Position
			want bool
		}{
			{p(20, 20), p(10, 10), true},
			{p(10, 10), p(20, 20), false},
			{p(10, 10), p(10, 10), false},
			{p(10, 8), p(10, 5), true}, // events of one explicit transaction share a commit
			{p(10, 5), p(10, 8), false},
			{p(11, 1), p(10, 9), true},
		}
		for _, tc := range tests {
			if got := follows(tc.a, tc.b); got != tc.want {
				t.Errorf("follows(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		}
	})
}

func TestIsSystem(t *testing.T) {
	tests := []struct {
		stream, typ string
		want        bool
	}{
		{"course-42", "course.published.v1", false},
		{"learner-7", "learner.module_completed.v1", false},
		{"course-42", "$metadata", true},             // a system type in a user stream
		{"$$course-42", "$metadata", true},           // stream metadata
		{"$ce-course", "$>", true},                   // a projection's link
		{"$stats-127.0.0.1:2113", "stats", true},     // a system stream, whatever the type
		{"course-$42", "course.published.v1", false}, // only a leading $ counts
	}
	for _, tc := range tests {
		if got := isSystem(&kurrentdb.RecordedEvent{StreamID: tc.stream, EventType: tc.typ}); got != tc.want {
			t.Errorf("isSystem(stream %q, type %q) = %v, want %v", tc.stream, tc.typ, got, tc.want)
		}
	}
}

func TestMetadata(t *testing.T) {
	full := eventstore.Metadata{CorrelationID: "corr-1", CausationID: "cmd-9", UserID: "user-3", RequestID: "req-5"}
	t.Run("survives_a_round_trip", func(t *testing.T) {
		raw, err := encodeMetadata(full)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(full, decodeMetadata(raw)); diff != "" {
			t.Errorf("metadata after a round trip (-want +got):\n%s", diff)
		}
	})
	t.Run("carries_the_server's_correlation_keys_as_flat_strings", func(t *testing.T) {
		raw, err := encodeMetadata(full)
		if err != nil {
			t.Fatal(err)
		}
		// The client's newer append APIs accept only a JSON object of strings.
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("metadata %s is not a flat object of strings: %v", raw, err)
		}
		want := map[string]string{
			"correlationId": "corr-1", "causationId": "cmd-9", "userId": "user-3", "requestId": "req-5",
			"$correlationId": "corr-1", "$causationId": "cmd-9",
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("stored metadata (-want +got):\n%s", diff)
		}
	})
	t.Run("leaves_out_empty_fields", func(t *testing.T) {
		raw, err := encodeMetadata(eventstore.Metadata{UserID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != `{"userId":"u"}` {
			t.Errorf("metadata = %s, want only the user id", raw)
		}
	})
	t.Run("reads_the_server's_keys_when_ours_are_missing", func(t *testing.T) {
		got := decodeMetadata([]byte(`{"$correlationId":"c","$causationId":"k","userId":"u"}`))
		want := eventstore.Metadata{CorrelationID: "c", CausationID: "k", UserID: "u"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("metadata (-want +got):\n%s", diff)
		}
	})
	t.Run("reads_what_is_not_json_as_empty", func(t *testing.T) {
		for _, raw := range [][]byte{nil, {}, []byte("\x00\x01binary"), []byte(`["a"]`)} {
			if got := decodeMetadata(raw); got != (eventstore.Metadata{}) {
				t.Errorf("decodeMetadata(%q) = %+v, want empty", raw, got)
			}
		}
	})
}

func TestToEventData(t *testing.T) {
	id1, id2 := uuid.New(), uuid.New()
	got, err := toEventData([]eventstore.EventData{
		{ID: id1, Type: "course.published.v1", Data: []byte(`{"courseId":"c1"}`), Metadata: eventstore.Metadata{UserID: "u"}},
		{ID: id2, Type: "blob.stored.v1", Data: []byte{0xff, 0x00}},
	})
	if err != nil {
		t.Fatalf("toEventData: %v", err)
	}
	want := []kurrentdb.EventData{
		{EventID: id1, EventType: "course.published.v1", ContentType: kurrentdb.ContentTypeJson,
			Data: []byte(`{"courseId":"c1"}`), Metadata: []byte(`{"userId":"u"}`)},
		{EventID: id2, EventType: "blob.stored.v1", ContentType: kurrentdb.ContentTypeBinary,
			Data: []byte{0xff, 0x00}, Metadata: []byte(`{}`)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}
	if _, err := toEventData([]eventstore.EventData{{Type: "x", Data: []byte(`{}`)}}); err == nil {
		t.Error("an event without an id was accepted; the client would invent one and break idempotency")
	}
}

func TestFromRecorded(t *testing.T) {
	id := uuid.New()
	created := time.Date(2025, 3, 14, 9, 26, 53, 500, time.FixedZone("CET", 3600))
	got := fromRecorded(&kurrentdb.RecordedEvent{
		EventID:      id,
		EventType:    "learner.enrolled.v1",
		ContentType:  "application/json",
		StreamID:     "learner-7",
		EventNumber:  4,
		Position:     kurrentdb.Position{Commit: 90210, Prepare: 90210},
		CreatedDate:  created,
		Data:         []byte(`{"learnerId":"7"}`),
		UserMetadata: []byte(`{"correlationId":"c","causationId":"k","userId":"u","requestId":"r"}`),
	})
	want := eventstore.RecordedEvent{
		ID: id, StreamID: "learner-7", Version: 5, Position: 90210, RecordedAt: created.UTC(),
		Type: "learner.enrolled.v1", Data: []byte(`{"learnerId":"7"}`),
		Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "k", UserID: "u", RequestID: "r"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded event (-want +got):\n%s", diff)
	}
	if got.RecordedAt.Location() != time.UTC {
		t.Errorf("recorded at %v, want UTC", got.RecordedAt)
	}
}

func TestAppendResult(t *testing.T) {
	t.Run("a_new_append_reports_its_last_event", func(t *testing.T) {
		res, ok := appendResult(&kurrentdb.WriteResult{CommitPosition: 5000, PreparePosition: 5000, NextExpectedVersion: 2})
		if want := (eventstore.AppendResult{Version: 3, Position: 5000}); !ok || res != want {
			t.Errorf("appendResult = %+v, %v; want %+v", res, ok, want)
		}
	})
	t.Run("a_retry_has_no_position_to_report", func(t *testing.T) {
		if res, ok := appendResult(&kurrentdb.WriteResult{NextExpectedVersion: 2}); ok {
			t.Errorf("appendResult of a retry = %+v, want it looked up", res)
		}
	})
	t.Run("a_retry's_first_event_is_counted_back_from_its_last", func(t *testing.T) {
		tests := []struct {
			lastRevision uint64
			n            int
			want         uint64
		}{
			{2, 3, 1}, // revisions 0..2: versions 1..3
			{9, 2, 9}, // revisions 8..9: versions 9..10
			{0, 1, 1},
			{0, 4, 1}, // an impossible answer does not wrap around
		}
		for _, tc := range tests {
			if got := firstRetriedVersion(tc.lastRevision, tc.n); got != tc.want {
				t.Errorf("firstRetriedVersion(%d, %d) = %d, want %d", tc.lastRevision, tc.n, got, tc.want)
			}
		}
	})
}

// TestClientErrors classifies the errors the real client returns, produced by talking to the
// protocol fake, since the client's error type cannot be built from outside.
func TestClientErrors(t *testing.T) {
	f := startFake(t)
	cfg, err := kurrentdb.ParseConnectionString(f.url())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = kurrentdb.NoopLogging()
	// Each case has its own client: after Unavailable the client reconnects and forgets its old
	// connection without closing it, which only closing the client right away cleans up.
	newClient := func(t *testing.T) *kurrentdb.Client {
		c, err := kurrentdb.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	event := kurrentdb.EventData{EventID: uuid.New(), EventType: "x", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)}
	appendAt := func(t *testing.T, state kurrentdb.StreamState) error {
		_, err := newClient(t).AppendToStream(ctx, "order-1", kurrentdb.AppendToStreamOptions{StreamState: state}, event)
		return err
	}

	t.Run("a_wrong_expected_version_becomes_ErrConcurrency", func(t *testing.T) {
		err := appendAt(t, kurrentdb.Revision(4))
		if !isWrongVersion(err) {
			t.Fatalf("append at revision 4 of a new stream: err = %v, want the client's wrong expected version", err)
		}
		// The client's own helper says "no error" exactly the wrong way round.
		if _, ok := kurrentdb.FromError(err); ok {
			t.Errorf("FromError reports ok for %v; the adapter must not rely on it", err)
		}
		if got := translate(err); !errors.Is(got, eventstore.ErrConcurrency) {
			t.Errorf("translate(%v) = %v, want ErrConcurrency", err, got)
		}
		var kerr *kurrentdb.Error
		if got := translate(err); !errors.As(got, &kerr) {
			t.Errorf("translate(%v) = %v, lost the client's error", err, got)
		}
	})
	t.Run("an_unavailable_node_needs_a_new_client", func(t *testing.T) {
		f.failNext(codes.Unavailable)
		err := appendAt(t, kurrentdb.Any{})
		if !needsNewClient(err) || !isRetryable(err) || isPermanent(err) {
			t.Errorf("unavailable: err = %v, needs a new client %v, retryable %v, permanent %v; want true, true, false",
				err, needsNewClient(err), isRetryable(err), isPermanent(err))
		}
		if errors.Is(translate(err), eventstore.ErrConcurrency) {
			t.Errorf("translate(%v) claims a conflict", err)
		}
	})
	t.Run("a_denied_permission_is_permanent", func(t *testing.T) {
		f.failNext(codes.PermissionDenied)
		err := appendAt(t, kurrentdb.Any{})
		if !isPermanent(err) || isRetryable(err) {
			t.Errorf("permission denied: err = %v, permanent %v, retryable %v; want true, false", err, isPermanent(err), isRetryable(err))
		}
	})
	t.Run("a_missing_stream_is_not_found", func(t *testing.T) {
		rs, err := newClient(t).ReadStream(ctx, "missing-1", kurrentdb.ReadStreamOptions{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		_, err = rs.Recv()
		if !isNotFound(err) {
			t.Errorf("reading a missing stream: err = %v, want the client's not found", err)
		}
	})
	t.Run("an_expired_deadline_becomes_context.DeadlineExceeded", func(t *testing.T) {
		expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		_, err := newClient(t).AppendToStream(expired, "order-1", kurrentdb.AppendToStreamOptions{}, event)
		if _, ok := errorCode(err); !ok {
			t.Fatalf("append with an expired deadline: err = %v, want the client's error", err)
		}
		if got := translate(err); !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("translate(%v) = %v, want context.DeadlineExceeded", err, got)
		}
	})
	t.Run("a_closed_client_needs_a_new_one", func(t *testing.T) {
		closed, err := kurrentdb.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		_, err = closed.AppendToStream(ctx, "order-1", kurrentdb.AppendToStreamOptions{}, event)
		if !needsNewClient(err) {
			t.Errorf("append on a closed client: err = %v, want it to ask for a new client", err)
		}
	})
	t.Run("an_append_cut_short_is_retried", func(t *testing.T) {
		// What the client returns when the server ends an append before reading all of it.
		cut, _ := kurrentdb.FromError(fmt.Errorf("could not send append request header. Reason: %w", io.EOF))
		if !isRetryable(cut) || needsNewClient(cut) {
			t.Errorf("%v: retryable %v, needs a new client %v; want true, false", cut, isRetryable(cut), needsNewClient(cut))
		}
		if other, _ := kurrentdb.FromError(errors.New("boom")); isRetryable(other) {
			t.Errorf("%v is retryable", other)
		}
	})
	t.Run("other_errors_pass_through", func(t *testing.T) {
		plain := errors.New("disk on fire")
		if got := translate(plain); got != plain {
			t.Errorf("translate(%v) = %v, want it unchanged", plain, got)
		}
		wrapped, _ := kurrentdb.FromError(plain)
		if got := translate(wrapped); !errors.Is(got, plain) || errors.Is(got, eventstore.ErrConcurrency) {
			t.Errorf("translate(%v) = %v, want it unchanged", wrapped, got)
		}
	})
}
