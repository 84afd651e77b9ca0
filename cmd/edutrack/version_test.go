package main

import (
	"bytes"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	built := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/edutrack/edutrack", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"},
			{Key: "vcs.modified", Value: "false"}}}
	modified := *built
	modified.Settings = append(modified.Settings[:2:2], debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	tests := []struct {
		name     string
		info     *debug.BuildInfo
		override string
		want     string
	}{
		{name: "names the version, commit and Go version the build recorded", info: built,
			want: "version: v1.4.0\ncommit:  3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49\ngo:      go1.26.1\n"},
		{name: "says when the work tree had changes", info: &modified,
			want: "version: v1.4.0\ncommit:  3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49 (modified)\ngo:      go1.26.1\n"},
		{name: "takes the version given with -ldflags over the build's", info: built, override: "v1.4.0-rc.1",
			want: "version: v1.4.0-rc.1\ncommit:  3f2a1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49\ngo:      go1.26.1\n"},
		{name: "says what it does not know", info: &debug.BuildInfo{},
			want: "version: (devel)\ncommit:  unknown\ngo:      " + runtime.Version() + "\n"},
		{name: "does without build information", info: nil,
			want: "version: (devel)\ncommit:  unknown\ngo:      " + runtime.Version() + "\n"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if got := describeBuild(tc.info, tc.override); got != tc.want {
				t.Errorf("describeBuild = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("prints_this_binary's_build", func(t *testing.T) {
		var stdout bytes.Buffer
		if err := run(t.Context(), []string{"version"}, envOf(nil), &stdout, io.Discard, nil); err != nil {
			t.Fatal(err)
		}
		info, _ := debug.ReadBuildInfo()
		if want := describeBuild(info, ""); stdout.String() != want {
			t.Errorf("version printed %q, want %q", stdout.String(), want)
		}
		if !strings.Contains(stdout.String(), "go:      "+runtime.Version()) {
			t.Errorf("version printed %q, want the Go version %s", stdout.String(), runtime.Version())
		}
	})

	t.Run("refuses_arguments", func(t *testing.T) {
		if err := run(t.Context(), []string{"version", "now"}, envOf(nil), io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "unexpected arguments: now") {
			t.Errorf("version now: %v, want the argument refused", err)
		}
	})
}

// The version given to the build is the one the binary prints. -X names the variable by its
// path, and a rename would break it without a word from the compiler.
func TestVersionGivenToTheBuild(t *testing.T) {
	t.Parallel()
	bin, err := buildEdutrack(t.TempDir(), "-ldflags=-X main.version=v0.0.0-given")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("edutrack version: %v", err)
	}
	if !strings.HasPrefix(string(out), "version: v0.0.0-given\n") {
		t.Errorf("edutrack version printed %q, want the version given to the build", out)
	}
}
