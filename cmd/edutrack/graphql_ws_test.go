package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/edutrack/edutrack/domain"
)

// A subscription over WebSocket (graphql-transport-ws) answers the course as it is, then again
// as a mutation changes it; a connection without a valid token in connection_init is closed.
func TestGraphQLSubscriptionFollowsTheChangeFeed(t *testing.T) {
	s := start(t, t.TempDir(), &logTracker{})
	teacher := bearer("wt", domain.Instructor)
	mutate(t, s, bearer(testAdmin, domain.Admin), "registerUser", `{id: "wt", name: "Grace", email: "wt@example.com", role: "instructor"}`)
	pos := mutate(t, s, teacher, "createCourse", `{id: "ws", title: "Live", category: "cs", level: "beginner", instructorId: "wt"}`)
	// The course is projected before the subscription starts, which answers it as it is.
	if a := gql(t, s, teacher, `query($p: Uint64) { course(id: "ws", minPosition: $p) { id } }`, map[string]any{"p": pos}); len(a.Errors) > 0 {
		t.Fatal(a.Errors)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dial := func() *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/graphql/ws",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	type message struct {
		Type    string          `json:"type"`
		ID      string          `json:"id,omitempty"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	read := func(c *websocket.Conn) message {
		for {
			var m message
			if err := wsjson.Read(ctx, c, &m); err != nil {
				t.Fatalf("read: %v", err)
			}
			if m.Type != "ping" && m.Type != "pong" {
				return m
			}
		}
	}

	t.Run("without a token the connection closes", func(t *testing.T) {
		c := dial()
		defer c.CloseNow()
		wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": map[string]any{}})
		var m message
		if err := wsjson.Read(ctx, c, &m); err == nil && m.Type == "connection_ack" {
			t.Fatalf("acknowledged a connection without a token")
		}
	})

	c := dial()
	defer c.CloseNow()
	wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": teacher}})
	if m := read(c); m.Type != "connection_ack" {
		t.Fatalf("got %+v, want connection_ack", m)
	}
	wsjson.Write(ctx, c, map[string]any{"type": "subscribe", "id": "1",
		"payload": map[string]any{"query": `subscription { courseChanged(id: "ws") { id description status } }`}})
	if m := read(c); m.Type != "next" || !strings.Contains(string(m.Payload), `"status":"draft"`) {
		t.Fatalf("first answer %s %s, want the draft as it is", m.Type, m.Payload)
	}
	mutate(t, s, teacher, "updateCourse", `{id: "ws", description: "pushed"}`)
	if m := read(c); m.Type != "next" || !strings.Contains(string(m.Payload), `"description":"pushed"`) {
		t.Fatalf("after the change %s %s, want the new description", m.Type, m.Payload)
	}
	c.Close(websocket.StatusNormalClosure, "")
}
