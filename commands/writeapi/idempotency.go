package writeapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/internal/problem"
)

// An Idempotency-Key names one request: its method, its route and its body. A retry with the
// same key and the same request is the same command and answers its first result; the same key
// with another request answers 422, as the IETF draft on the header says, never a false success.
//
// Two records bind a key to its request. The event log binds it for good within the stream the
// command changed: the command's event ids derive from the request (commands.Meta.Request). An
// index in this process binds it across routes and streams, and for commands that changed
// nothing, for the process's lifetime and its most recent keys.

// errKeyReused answers a key used before for another request.
var errKeyReused = problem.New(http.StatusUnprocessableEntity, "Idempotency-Key",
	"this key was used for another request (method, route or body); use a new key for a new request")

// fingerprint returns what identifies r's request, reading its body and leaving it to be read
// again. The body counts by its JSON value, so a retry that re-encodes the same value (other
// spacing, other key order) is the same request.
func fingerprint(r *http.Request) (string, error) {
	var raw []byte
	if r.Body != nil && r.Body != http.NoBody {
		// One byte past the cap, so the decoder still sees a body that is too large.
		var err error
		if raw, err = io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1)); err != nil {
			return "", err
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
	}
	return requestPrint(r.Method+" "+r.URL.Path, raw), nil
}

// requestPrint identifies the request of route with body (a JSON value, or none).
func requestPrint(route string, body []byte) string {
	h := sha256.New()
	io.WriteString(h, route+"\n")
	if body != nil {
		h.Write(canonicalJSON(body))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// commandIDOf is the id of the command an Idempotency-Key names: the same key on the same route
// from the same user is the same command.
func commandIDOf(route, userID, key string) string {
	return uuid.NewSHA1(commandNamespace, []byte(route+"\n"+userID+"\n"+key)).String()
}

// canonicalJSON re-encodes a JSON value with sorted keys; anything else stays as it is (and
// the decoder refuses it later).
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// keyIndex remembers the request of each recent (user, key) that was answered with a success.
type keyIndex struct {
	mu       sync.Mutex
	requests map[string]string
	order    []string
	capacity int
}

func newKeyIndex(capacity int) *keyIndex {
	return &keyIndex{requests: make(map[string]string), capacity: capacity}
}

// check returns errKeyReused when key was answered before for another request.
func (k *keyIndex) check(key, request string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if prev, ok := k.requests[key]; ok && prev != request {
		return errKeyReused
	}
	return nil
}

// add records that key was answered for request.
func (k *keyIndex) add(key, request string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.requests[key]; ok {
		return
	}
	k.requests[key] = request
	k.order = append(k.order, key)
	if len(k.order) > k.capacity {
		delete(k.requests, k.order[0])
		k.order = k.order[1:]
	}
}

// keyOf names a key as it binds: per user.
func keyOf(m commands.Meta, key string) string { return m.Actor.UserID + "\n" + key }

// Keys binds Idempotency-Keys to their requests for every way in to the commands: the write
// API's routes, and the GraphQL mutations that cmd/edutrack wires to the same commands. One
// index serves them all, so a key names one request whichever way it came.
type Keys struct{ index *keyIndex }

// Keys answers the index the API binds its keys in.
func (a *API) Keys() *Keys { return &Keys{index: a.keys} }

// Bind makes m the command that key names on route: its id derived from route, m's actor and
// key, and its request from route and body (a JSON value, compared by value). It answers 400
// for a key past the length the events can record, and 422 (naming Idempotency-Key) when the
// key was answered before for another request. An empty key binds nothing.
func (k *Keys) Bind(m *commands.Meta, key, route string, body []byte) error {
	if key == "" {
		return nil
	}
	if len(key) > maxHeaderLen {
		return problem.New(http.StatusBadRequest, "Idempotency-Key", fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
	}
	m.CommandID = commandIDOf(route, m.Actor.UserID, key)
	m.Request = requestPrint(route, body)
	return k.index.check(keyOf(*m, key), m.Request)
}

// Done records that key was answered with a success for m's request; call it after the
// command succeeded.
func (k *Keys) Done(m commands.Meta, key string) {
	if key != "" {
		k.index.add(keyOf(m, key), m.Request)
	}
}

// KeyError is err as a client reads it: the log's refusal of a key bound to another request
// (commands.ErrRequestMismatch) is the same 422 as the index's.
func KeyError(err error) error {
	if errors.Is(err, commands.ErrRequestMismatch) {
		return errKeyReused
	}
	return err
}
