// Command edutrack is EduTrack's one binary: `edutrack serve` runs the service; other
// commands operate it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		if !errors.As(err, new(logged)) {
			fmt.Fprintln(os.Stderr, "edutrack:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program. ready, if not nil, learns the HTTP address once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	root := newRootCmd(getenv, func(ctx context.Context, cfg config, stderr io.Writer) error {
		return serve(ctx, cfg, stderr, ready)
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	initCompletionCmd(root)
	root.SetArgs(commandLine(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if u := (usageError{}); errors.As(err, &u) {
		fmt.Fprint(stderr, cmd.UsageString())
	}
	return err
}

// newRootCmd is `edutrack`, with every command under it; serve runs `edutrack serve`.
func newRootCmd(getenv func(string) string, serve func(ctx context.Context, cfg config, stderr io.Writer) error) *cobra.Command {
	root := &cobra.Command{
		Use:   "edutrack <command>",
		Short: "EduTrack, a learning-management backend",
		Long: `EduTrack is a learning-management backend: "edutrack serve" runs it, and the other commands
operate it. Every setting is an EDUTRACK_ environment variable, which a flag of the same name
overrides.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return usageError{errors.New("no command given")} },
		// run shows the usage only with a usage error, and main prints the error.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newServeCmd(getenv, serve),
		newProjectionsCmd(getenv),
		newJobsCmd(getenv),
		newAuditCmd(getenv),
		newHealthcheckCmd(getenv),
		newTokenCmd(getenv),
		newVersionCmd(),
	)
	return root
}

// initCompletionCmd adds cobra's completion command, once the output is set: the command writes
// to the output it finds when it is made. It refuses a shell it does not know, as every command
// refuses unknown subcommands; on its own it would show its help and exit 0.
func initCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	c := subcommand(root, "completion")
	c.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("completion: unknown shell %q", args[0])}
		}
		return nil
	}
	c.RunE = func(*cobra.Command, []string) error { return usageError{errors.New("completion: no shell given")} }
}

// usageTemplate is every command's usage, which -h shows and a usage error prints.
const usageTemplate = `usage: {{.UseLine}}{{if .HasAvailableSubCommands}}

commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }}  {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

flags of {{.Parent.CommandPath}}:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} <command> -h' for the flags of a command.{{end}}
`

// usageError is a command called the wrong way; run shows the command's usage with it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// flagError words a mistake in the flags as Go's flag package did before the commands moved to
// cobra, and makes it a usage error.
func flagError(_ *cobra.Command, err error) error {
	if missing := (*pflag.NotExistError)(nil); errors.As(err, &missing) {
		name := missing.GetSpecifiedName()
		if name == "" {
			name = missing.GetSpecifiedShortnames()
		}
		err = fmt.Errorf("flag provided but not defined: -%s", name)
	}
	return usageError{err}
}

// noArgs refuses arguments to a command that takes only flags; prefix starts the error.
func noArgs(prefix string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%sunexpected arguments: %s", prefix, strings.Join(args, " "))
		}
		return nil
	}
}

// commandLine is args as cobra reads them: the command's names first, then its flags and
// arguments, every flag with two dashes. EduTrack's commands read their flags with Go's flag
// package before they moved to cobra, which took one dash (-http-addr) and flags before a
// subcommand (projections -json list); scripts and container specs written so keep working.
// A word after "--" is left as it is.
func commandLine(root *cobra.Command, args []string) []string {
	// A shell asking for completions sends the word being typed last; it stays as typed.
	if len(args) > 1 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		return append(append([]string{args[0]}, commandLine(root, args[1:len(args)-1])...), args[len(args)-1])
	}
	names, rest := []string{}, []string{}
	cmd, positional := root, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !strings.HasPrefix(a, "--") && len(name) > 1 {
				a = "-" + a
			}
			rest = append(rest, a)
			if f := lookupFlag(cmd, name); f != nil && f.NoOptDefVal == "" && !hasValue && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		case !positional && subcommand(cmd, a) != nil:
			cmd = subcommand(cmd, a)
			names = append(names, a)
		default:
			positional = true
			rest = append(rest, a)
		}
	}
	return append(names, rest...)
}

func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds a flag that cmd may be given: its own, one its parents pass down, or, since a
// flag may stand before the subcommand it belongs to, one of its subcommands'.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	for c := cmd; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	for _, sub := range cmd.Commands() {
		if f := lookupFlag(sub, name); f != nil {
			return f
		}
	}
	return nil
}
