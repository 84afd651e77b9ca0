package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"strings"
	"testing"
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
