// Command layering checks that EduTrack's packages import only what their layer allows. The
// rules are data (rules.txt beside this file); the imports come from `go list -deps`, so an
// import that arrives indirectly breaks a rule as surely as a direct one.
//
//	go run ./internal/layering [-rules FILE] [DIR]
//
// It exits 1, naming each broken rule and the chain of imports that breaks it.
package main

import (
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
)

//go:embed rules.txt
var defaultRules string

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "layering:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("layering", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesFile := fs.String("rules", "", "file of rules (default: the rules.txt built in)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := "."
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
	}
	text := defaultRules
	if *rulesFile != "" {
		b, err := os.ReadFile(*rulesFile)
		if err != nil {
			return err
		}
		text = string(b)
	}
	rules, err := ParseRules(text)
	if err != nil {
		return err
	}
	mod, err := Load(dir)
	if err != nil {
		return err
	}
	violations := Check(mod, rules)
	for _, v := range violations {
		fmt.Fprintln(stdout, v)
	}
	if len(violations) > 0 {
		return fmt.Errorf("%d imports break the layering (rules: internal/layering/rules.txt)", len(violations))
	}
	fmt.Fprintf(stdout, "layering: %d packages keep %d rules\n", len(mod.Packages), len(rules))
	return nil
}
