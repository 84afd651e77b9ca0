package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module writes a module of the given files (path: source) into a temp dir.
func module(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/school\n\ngo 1.26\n"
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pkg is the source of package name importing the given paths.
func pkg(name string, imports ...string) string {
	var b strings.Builder
	b.WriteString("package " + name + "\n\n")
	for _, i := range imports {
		b.WriteString("import _ \"" + i + "\"\n")
	}
	return b.String()
}

func check(t *testing.T, dir string) []Violation {
	t.Helper()
	rules, err := ParseRules(defaultRules)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return Check(mod, rules)
}

// A module laid out as EduTrack is, whose packages import only what their layer allows.
func layered() map[string]string {
	const m = "example.com/school/"
	return map[string]string{
		"domain/domain.go":                           pkg("domain", "time"),
		"domain/course/course.go":                    pkg("course", m+"domain"),
		"eventstore/eventstore.go":                   pkg("eventstore", m+"domain"),
		"eventstore/sqlitelog/log.go":                pkg("sqlitelog", m+"eventstore"),
		"commands/commands.go":                       pkg("commands", m+"domain/course", m+"eventstore", "context"),
		"commands/writeapi/writeapi.go":              pkg("writeapi", m+"commands", m+"internal/problem", "net/http"),
		"internal/problem/problem.go":                pkg("problem", m+"domain", "net/http"),
		"projections/projections.go":                 pkg("projections", m+"eventstore", m+"projections/readstore"),
		"projections/readstore/readstore.go":         pkg("readstore"),
		"projections/readstore/sqlitestore/store.go": pkg("sqlitestore", m+"projections/readstore"),
		"readapi/readapi.go":                         pkg("readapi", m+"projections/readstore", m+"internal/problem"),
		"cmd/edutrack/main.go":                       pkg("main", m+"commands/writeapi", m+"readapi", m+"eventstore/sqlitelog", m+"projections/readstore/sqlitestore"),
	}
}

func TestALayeredModulePasses(t *testing.T) {
	if v := check(t, module(t, layered())); len(v) != 0 {
		t.Errorf("violations in a layered module: %v", v)
	}
}

func TestTheCheckerFailsOnAViolatingImport(t *testing.T) {
	const m = "example.com/school/"
	for _, tc := range []struct {
		name       string
		file, src  string
		pkg, dep   string
		ruleText   string
		chainAtMid string // a package the chain must pass through, if any
	}{
		{name: "the write core imports net/http", file: "commands/commands.go",
			src: pkg("commands", m+"domain", "net/http"), pkg: m + "commands", dep: "net/http", ruleText: "commands                never"},
		{name: "the write core imports HTTP support indirectly", file: "commands/commands.go",
			src: pkg("commands", m+"internal/problem"), pkg: m + "commands", dep: "net/http", ruleText: "commands                never",
			chainAtMid: m + "internal/problem"},
		{name: "the domain imports the event store", file: "domain/course/course.go",
			src: pkg("course", m+"eventstore"), pkg: m + "domain/course", dep: m + "eventstore", ruleText: "domain/..."},
		{name: "a projector sends a command", file: "projections/projections.go",
			src: pkg("projections", m+"commands"), pkg: m + "projections", dep: m + "commands", ruleText: "projections/...         never"},
		{name: "the read API appends", file: "readapi/readapi.go",
			src: pkg("readapi", m+"commands/writeapi"), pkg: m + "readapi", dep: m + "commands/writeapi", ruleText: "readapi/..."},
		{name: "an adapter is imported outside cmd", file: "readapi/readapi.go",
			src: pkg("readapi", m+"projections/readstore/sqlitestore"), pkg: m + "readapi", dep: m + "projections/readstore/sqlitestore",
			ruleText: "!cmd/..."},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			files := layered()
			files[tc.file] = tc.src
			dir := module(t, files)
			violations := check(t, dir)
			i := slices.IndexFunc(violations, func(v Violation) bool {
				return v.Package == tc.pkg && v.Import == tc.dep && strings.HasPrefix(v.Rule.Text, tc.ruleText)
			})
			if i < 0 {
				t.Fatalf("no violation of %q by %s importing %s; got %v", tc.ruleText, tc.pkg, tc.dep, violations)
			}
			chain := violations[i].Chain
			if chain[0] != tc.pkg || chain[len(chain)-1] != tc.dep || (tc.chainAtMid != "" && !slices.Contains(chain, tc.chainAtMid)) {
				t.Errorf("chain %v does not lead from %s to %s (through %q)", chain, tc.pkg, tc.dep, tc.chainAtMid)
			}
			if err := run([]string{dir}, &strings.Builder{}, &strings.Builder{}); err == nil {
				t.Error("run passed a module with a violating import")
			}
		})
	}
}

func TestTheRepositoryKeepsItsLayers(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"../.."}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

func TestParseRulesRefusesMalformedLines(t *testing.T) {
	for _, text := range []string{"", "# only comments\n", "domain/...\n", "domain/... may std\n"} {
		if _, err := ParseRules(text); err == nil {
			t.Errorf("ParseRules(%q) accepted it", text)
		}
	}
}
