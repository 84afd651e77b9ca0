package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
)

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:0", "EDUTRACK_DATA_DIR": dir, "EDUTRACK_LOG_LEVEL": "error"}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, getenv, io.Discard, io.Discard, func(a string) { addr <- a })
	}()
	base := "http://" + <-addr
	// The embedded default signs with the key it generated in the data dir, which the token
	// command reads.
	var token bytes.Buffer
	if err := run(context.Background(), []string{"token", "--sub", "ops", "--role", "admin"}, getenv, &token, io.Discard, nil); err != nil {
		t.Fatalf("token: %v", err)
	}
	send := func(method, path, body string) (*http.Response, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token.String()))
		return http.DefaultClient.Do(req)
	}
	for _, body := range []string{
		`{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`,
		`{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`,
	} {
		resp, err := send(http.MethodPost, "/v1/users", body)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	resp, err := send(http.MethodPatch, "/v1/users/bob", `{"name":"Robert"}`)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("rename: %v %v", resp, err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	var out bytes.Buffer
	var db *sql.DB
	if err := run(context.Background(), []string{"audit", "verify"}, getenv, &out, io.Discard, nil); err != nil {
		t.Fatalf("audit verify of an untouched log: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "ok: 3 events in 2 streams") {
		t.Errorf("audit verify said %q, want 3 events in 2 streams intact", out.String())
	}

	db, err = sql.Open("sqlite", "file:"+dir+"/events.db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE events SET data = replace(data, 'Robert', 'Mallory') WHERE position = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	err = run(context.Background(), []string{"audit", "verify", "-data-dir", dir}, func(string) string { return "" }, &out, io.Discard, nil)
	if err == nil || !strings.Contains(out.String(), "position 3 (stream user-bob, version 2)") {
		t.Errorf("audit verify of an edited log = %v, said %q; want the edited event named", err, out.String())
	}
}

// writeLog runs serve with env until it has registered ada and bob and renamed bob (positions 1
// to 3), then stops it cleanly; it returns what serve logged.
func writeLog(t *testing.T, env map[string]string, commands ...[3]string) string {
	t.Helper()
	if len(commands) == 0 {
		commands = [][3]string{
			{http.MethodPost, "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`},
			{http.MethodPost, "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`},
			{http.MethodPatch, "/v1/users/bob", `{"name":"Robert"}`},
		}
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, logs, func(a string) { addr <- a })
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs)
	}
	client := &http.Client{Transport: &http.Transport{}}
	for _, c := range commands {
		req, _ := http.NewRequest(c[0], base+c[1], strings.NewReader(c[2]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", bearer(testAdmin, domain.Admin))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %v %v", c[0], c[1], resp, err)
		}
		resp.Body.Close()
	}
	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	return logs.String()
}

// anchorLine is one "event log anchored" line of serve's log.
var anchorLine = regexp.MustCompile(`msg="event log anchored" seq=(\d+) kind=(\w+) head=(\d+) mac=([0-9a-f]+)`)

// audit runs `edutrack audit args...` under env and returns what it printed, and its error.
func audit(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"audit"}, args...), envOf(env), &out, io.Discard, nil)
	t.Logf("edutrack audit %s:\n%s%v", strings.Join(args, " "), out.String(), err)
	return out.String(), err
}

// forge changes the log in dir behind EduTrack's back, with each statement.
func forge(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("forge %q: %v", s, err)
		}
	}
}

// rechain recomputes every event's hash in the log in dir from what it now holds, in the
// chains' published format (eventstore/sqlitelog/chain.go), as a careful forger does after
// changing events: every chain then holds again.
func rechain(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT position, event_id, stream, version, type, data, recorded_at,
		correlation_id, causation_id, user_id, request_id FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		position int64
		hash     []byte
	}
	var todo []row
	heads := map[string][]byte{}
	for rows.Next() {
		var pos, version, at int64
		var id, data []byte
		var stream, typ, corr, caus, user, reqID string
		if err := rows.Scan(&pos, &id, &stream, &version, &typ, &data, &at, &corr, &caus, &user, &reqID); err != nil {
			t.Fatal(err)
		}
		content := sha256.New()
		for _, f := range [][]byte{id, []byte(stream), []byte(typ), data, []byte(corr), []byte(caus), []byte(user), []byte(reqID)} {
			content.Write(binary.AppendUvarint(nil, uint64(len(f))))
			content.Write(f)
		}
		prev := heads[stream]
		b := append([]byte{byte(len(prev))}, prev...)
		b = content.Sum(b)
		b = binary.BigEndian.AppendUint64(b, uint64(pos))
		b = binary.BigEndian.AppendUint64(b, uint64(version))
		b = binary.BigEndian.AppendUint64(b, uint64(at))
		h := sha256.Sum256(b)
		heads[stream] = h[:]
		todo = append(todo, row{pos, h[:]})
	}
	rows.Close()
	for _, r := range todo {
		if _, err := db.Exec(`UPDATE events SET hash = ? WHERE position = ?`, r.hash, r.position); err != nil {
			t.Fatal(err)
		}
	}
}

// Each forgery passes the chains, which is all `audit verify` checked before anchors: each test
// shows that first, with no anchor key, then what it says with the key.
func TestAuditVerifyAnchors(t *testing.T) {
	anchoredEnv := func(t *testing.T) map[string]string {
		env := testEnv(t.TempDir())
		env["EDUTRACK_ANCHOR_INTERVAL"] = "10ms"
		return env
	}
	chainsPass := func(t *testing.T, env map[string]string) {
		t.Helper()
		out, err := audit(t, map[string]string{"EDUTRACK_DATA_DIR": env["EDUTRACK_DATA_DIR"]}, "verify")
		if strings.Contains(out, "TAMPERED") || !strings.Contains(err.Error(), "no anchor key was given") {
			t.Fatalf("the chains alone caught the forgery, or the anchors went unmentioned")
		}
	}
	tampered := func(t *testing.T, env map[string]string, want ...string) {
		t.Helper()
		out, err := audit(t, env, "verify")
		if err == nil || !strings.Contains(err.Error(), "failed verification") {
			t.Errorf("audit verify: %v, want it to fail", err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("audit verify said:\n%s\nwant %q", out, w)
			}
		}
	}

	t.Run("finds_an_untouched_log_intact", func(t *testing.T) {
		env := anchoredEnv(t)
		writeLog(t, env)
		out, err := audit(t, env, "verify")
		if err != nil || !strings.Contains(out, "ok: 3 events in 2 streams, every chain intact;") ||
			!regexp.MustCompile(`\d+ anchors verified with key [0-9a-f]{16}, the last \d+:[0-9a-f]{64} \(shutdown, head 3, `).MatchString(out) {
			t.Errorf("audit verify said %q (%v)", out, err)
		}
		if _, err := audit(t, map[string]string{"EDUTRACK_DATA_DIR": env["EDUTRACK_DATA_DIR"]}, "verify"); err == nil ||
			!strings.Contains(err.Error(), "the event log has anchors, and no anchor key was given") {
			t.Errorf("audit verify without the key: %v, want it to ask for the key", err)
		}
	})
	t.Run("names_a_stream_rewritten_with_its_chain_recomputed", func(t *testing.T) {
		env := anchoredEnv(t)
		writeLog(t, env)
		dir := env["EDUTRACK_DATA_DIR"]
		forge(t, dir, `UPDATE events SET data = replace(replace(data, 'Robert', 'Mallory'), 'Bob', 'Mallory') WHERE stream = 'user-bob'`)
		rechain(t, dir)
		chainsPass(t, env)
		tampered(t, env, "TAMPERED: rewritten: position 2 (stream user-bob, version 1): the stream differs from ",
			"TAMPERED: rewritten: the events between positions ")
	})
	t.Run("names_an_event_forged_after_a_clean_shutdown", func(t *testing.T) {
		env := anchoredEnv(t)
		writeLog(t, env)
		dir := env["EDUTRACK_DATA_DIR"]
		forge(t, dir, `INSERT INTO events (position, event_id, stream, version, type, data, recorded_at, correlation_id, causation_id, user_id, request_id, hash)
			SELECT 4, randomblob(16), stream, 3, type, replace(data, 'Robert', 'Mallory'), recorded_at + 1000000, correlation_id, causation_id, user_id, request_id, hash
			FROM events WHERE position = 3`)
		rechain(t, dir)
		chainsPass(t, env)
		tampered(t, env, "TAMPERED: forged: events at positions 4 to 4 were appended while EduTrack was stopped")
	})
	t.Run("names_a_cut_tail", func(t *testing.T) {
		env := anchoredEnv(t)
		writeLog(t, env)
		dir := env["EDUTRACK_DATA_DIR"]
		forge(t, dir, `DELETE FROM events WHERE position = 3`, `DELETE FROM streams WHERE position = 3`,
			`UPDATE log_state SET value = MIN(value, 2) WHERE key = 'indexed'`)
		chainsPass(t, env)
		tampered(t, env, "TAMPERED: cut: events after position 2 were removed (anchor ",
			"TAMPERED: cut: stream user-bob, version 2: versions 2 to 2 were removed")
	})
	t.Run("names_deleted_anchors", func(t *testing.T) {
		env := anchoredEnv(t)
		logs := writeLog(t, env)
		writeLog(t, env, [3]string{http.MethodPatch, "/v1/users/bob", `{"name":"Bobby"}`})
		// The first run's shutdown anchor.
		m := anchorLine.FindAllStringSubmatch(logs, -1)
		last := m[len(m)-1]
		forge(t, env["EDUTRACK_DATA_DIR"], `DELETE FROM anchors WHERE seq = `+last[1])
		tampered(t, env, fmt.Sprintf("TAMPERED: anchors: anchors %s to %s were deleted", last[1], last[1]))
	})
	t.Run("names_the_latest_anchors_deleted_against_one_logged", func(t *testing.T) {
		env := anchoredEnv(t)
		first := anchorLine.FindAllStringSubmatch(writeLog(t, env), -1)
		second := anchorLine.FindAllStringSubmatch(writeLog(t, env, [3]string{http.MethodPatch, "/v1/users/bob", `{"name":"Bobby"}`}), -1)
		// The careful forger takes the log back to the end of the first run.
		end := first[len(first)-1]
		forge(t, env["EDUTRACK_DATA_DIR"], `DELETE FROM anchors WHERE seq > `+end[1], `DELETE FROM events WHERE position > `+end[3],
			`DELETE FROM streams WHERE position > `+end[3], `UPDATE log_state SET value = MIN(value, `+end[3]+`) WHERE key = 'indexed'`)
		if out, err := audit(t, env, "verify"); err != nil || !strings.HasPrefix(out, "ok: 3 events") {
			t.Errorf("audit verify found what the file cannot show: %v", err)
		}
		kept := second[len(second)-1]
		out, err := audit(t, env, "verify", "--expect-anchor", kept[1]+":"+kept[4])
		want := fmt.Sprintf("TAMPERED: anchors: anchor %s, which was expected, is not in the log: its anchors end at anchor %s", kept[1], end[1])
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("audit verify --expect-anchor said:\n%s\nwant %q", out, want)
		}
		if _, err := audit(t, env, "verify", "--expect-anchor", end[1]+":"+end[4][:16]); err != nil {
			t.Errorf("audit verify --expect-anchor with an anchor the log holds: %v", err)
		}
	})
	t.Run("refuses_an_expected_anchor_it_cannot_read", func(t *testing.T) {
		env := anchoredEnv(t)
		writeLog(t, env)
		if _, err := audit(t, env, "verify", "--expect-anchor", "3:abc"); err == nil || !strings.Contains(err.Error(), "at least 16 digits") {
			t.Errorf("audit verify --expect-anchor 3:abc: %v", err)
		}
	})
}

// A server whose log fails its check at start serves no history, says so in /readyz and in its
// log, and serves it again once an operator has accepted the log.
func TestHistoryRefusedWhileTheLogFailsVerification(t *testing.T) {
	dir, tracker := t.TempDir(), &logTracker{}
	s := start(t, dir, tracker)
	s.ok(s.do(http.MethodPost, "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`), http.StatusCreated, 1)
	s.stop()
	// While EduTrack is stopped, an event that chains well is added to bob's stream.
	forge(t, dir, `INSERT INTO events (position, event_id, stream, version, type, data, recorded_at, correlation_id, causation_id, user_id, request_id, hash)
		SELECT (SELECT MAX(position) + 1 FROM events), randomblob(16), stream, version + 1, 'user.name_changed.v1', '{"userId":"bob","name":"Mallory","at":"2026-01-02T03:04:05Z"}',
			recorded_at + 1000000, correlation_id, causation_id, user_id, request_id, hash
		FROM events WHERE stream = 'user-bob' ORDER BY version DESC LIMIT 1`)
	rechain(t, dir)

	failure := func(line string) bool { return strings.Contains(line, `msg="the event log failed verification`) }
	s = launch(t, dir, tracker, nil, failure)
	d := s.problemDetails(s.send(http.MethodGet, "/v1/learners/bob/history", "", nil), http.StatusServiceUnavailable, "")
	if !strings.Contains(d.Detail, "failed verification") {
		t.Errorf("history of a forged log: %+v", d)
	}
	// Degraded, not unready: every process shares the log; the metric pages.
	ready := get(t, s, "/readyz")
	if ready.status != http.StatusOK || !strings.Contains(string(ready.body), `"status":"degraded"`) ||
		!strings.Contains(string(ready.body), `"event_log_integrity":{"status":"degraded","error":"the event log failed verification: forged: events at positions`) {
		t.Errorf("/readyz of a forged log: %d %s", ready.status, ready.body)
	}
	if v, found := sample(string(get(t, s, "/metrics").body), "edutrack_event_log_verified"); !found || v != 0 {
		t.Errorf("edutrack_event_log_verified = %v (found %v) for a forged log, want 0", v, found)
	}
	s.stop()
	logged := s.logs.String()
	if !strings.Contains(logged, `level=ERROR msg="the event log failed verification`) || !strings.Contains(logged, `run="edutrack audit verify --data-dir `+dir+`"`) {
		t.Errorf("the server's log does not name the failure and the command to run:\n%s", logged)
	}

	out, err := audit(t, testEnv(dir), "accept", "--reason", "the event after the shutdown was a test of the alarm")
	if err != nil || !strings.Contains(out, "TAMPERED: forged: events at positions") || !strings.Contains(out, "accepted: anchor ") {
		t.Fatalf("audit accept: %v\n%s", err, out)
	}
	s = start(t, dir, tracker)
	if r := get(t, s, "/v1/learners/bob/history"); r.status != http.StatusOK {
		t.Errorf("history after accepting: %d %s", r.status, r.body)
	}
	if r := get(t, s, "/readyz"); !strings.Contains(string(r.body), `"event_log_integrity":{"status":"ok"}`) {
		t.Errorf("/readyz after accepting: %s", r.body)
	}
	s.stop()
	out, err = audit(t, testEnv(dir), "verify")
	if err != nil || !strings.Contains(out, "accepted (anchor ") || !strings.Contains(out, "ok: ") {
		t.Errorf("audit verify after accepting: %v\n%s", err, out)
	}
}

// With no key set, the embedded default generates one in the user's config dir, outside the
// data dir, and uses it from then on; audit verify finds it there too.
func TestAuditWithTheGeneratedAnchorKey(t *testing.T) {
	home := t.TempDir()
	env := testEnv(t.TempDir())
	delete(env, "EDUTRACK_ANCHOR_KEY")
	env["HOME"] = home
	keyFile := filepath.Join(home, ".config", "edutrack", "anchor.key")
	if logs := writeLog(t, env); !strings.Contains(logs, `msg="generated the event log's anchor key`) || !strings.Contains(logs, "path="+keyFile) {
		t.Errorf("the first start did not log the key it generated:\n%s", logs)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Dir(keyFile)); fi.Mode().Perm() != 0o700 {
		t.Errorf("the key's directory has mode %v, want 0700", fi.Mode().Perm())
	}
	logs := writeLog(t, env, [3]string{http.MethodPatch, "/v1/users/bob", `{"name":"Bobby"}`})
	if strings.Contains(logs, "generated") || !strings.Contains(logs, `msg="event log anchor key" key=`+keyFile) {
		t.Errorf("the second start did not use the key it had:\n%s", logs)
	}
	if out, err := audit(t, env, "verify"); err != nil || !strings.Contains(out, "ok: 4 events in 2 streams") || !strings.Contains(out, "anchors verified with key") {
		t.Errorf("audit verify with the generated key: %v\n%s", err, out)
	}
}
