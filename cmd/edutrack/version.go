package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version names the release this binary is, when its build says so:
// go build -ldflags "-X main.version=v1.4.0" ./cmd/edutrack. Empty, the Go toolchain's own
// record of the main module's version stands.
var version string

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the commit and the Go version of this binary",
		Args:  noArgs("version: "),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo()
			fmt.Fprint(cmd.OutOrStdout(), describeBuild(info, version))
			return nil
		},
	}
}

// describeBuild says what the build recorded in info: the main module's version, unless
// override names another, the VCS commit, whether the work tree had changes, and the Go version.
// info is nil in a binary built without module support.
func describeBuild(info *debug.BuildInfo, override string) string {
	v, commit, modified, goVersion := "(devel)", "unknown", "", runtime.Version()
	if info != nil {
		if info.Main.Version != "" {
			v = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = " (modified)"
			}
		}
	}
	if override != "" {
		v = override
	}
	return fmt.Sprintf("version: %s\ncommit:  %s%s\ngo:      %s\n", v, commit, modified, goVersion)
}
