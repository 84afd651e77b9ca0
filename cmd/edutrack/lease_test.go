package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

func TestFreeDeadHolder(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	host, _ := os.Hostname()
	// A pid that surely ran on this machine and no longer does.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	dead := exited.Process.Pid
	tests := []struct {
		name   string
		holder string
		freed  bool
	}{
		{"frees_the_lease_of_a_process_of_this_machine_that_no_longer_runs", fmt.Sprintf("%s/%d/abc", host, dead), true},
		{"leaves_a_running_holder_alone", fmt.Sprintf("%s/%d/abc", host, os.Getppid()), false},
		{"leaves_a_holder_on_another_machine_alone", fmt.Sprintf("elsewhere-%s/%d/abc", host, dead), false},
		{"leaves_a_holder_it_cannot_read_alone", "someone", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			held, err := store.AcquireLease(ctx, "projector", tc.holder, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			freeDeadHolder(ctx, store, "projector", quiet)
			l, err := store.AcquireLease(ctx, "projector", "next", time.Minute)
			if tc.freed {
				if err != nil || l.Token <= held.Token {
					t.Errorf("after freeing, acquire = %+v, %v; want the lease with a token above %d", l, err, held.Token)
				}
				return
			}
			if !errors.Is(err, readstore.ErrLeaseHeld) || l.Owner != tc.holder {
				t.Errorf("acquire = %+v, %v; want the lease still held by %s", l, err, tc.holder)
			}
		})
	}
}
