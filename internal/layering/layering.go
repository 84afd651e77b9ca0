package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Rule is one line of the rules: the packages it governs, and what they may or must not import.
type Rule struct {
	Line int
	// Subject names the governed packages; Except inverts it.
	Subject Pattern
	Except  bool
	// Only is true for "only" (every import must match Patterns), false for "never" (none may).
	Only     bool
	Patterns []Pattern
	Text     string
}

// Pattern is a package path inside the module ("commands", "commands/..."), a path outside it
// ("net/http"), "std" or "third-party".
type Pattern string

// ParseRules reads the rules' text.
func ParseRules(text string) ([]Rule, error) {
	var rules []Rule
	var errs []error
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || (f[1] != "only" && f[1] != "never") {
			errs = append(errs, fmt.Errorf("line %d: want <packages> only|never <patterns...>: %q", n, line))
			continue
		}
		r := Rule{Line: n, Subject: Pattern(strings.TrimPrefix(f[0], "!")), Except: strings.HasPrefix(f[0], "!"),
			Only: f[1] == "only", Text: line}
		for _, p := range f[2:] {
			r.Patterns = append(r.Patterns, Pattern(p))
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no rules"))
	}
	return rules, errors.Join(errs...)
}

// Package is one package of the module, as go list describes it.
type Package struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// Module is what the check needs of the module: its path, its packages, and which import paths
// are the standard library's.
type Module struct {
	Path     string
	Packages []Package
	Standard map[string]bool
	// imports of every package the module's packages depend on, to explain a chain.
	imports map[string][]string
	// top holds the module's top-level folders.
	top map[string]bool
}

// Load lists the module in dir with the go command.
func Load(dir string) (*Module, error) {
	out, err := goList(dir, "list", "-m", "-f", "{{.Path}}")
	if err != nil {
		return nil, err
	}
	mod := &Module{Path: strings.TrimSpace(string(out)), Standard: map[string]bool{}, imports: map[string][]string{},
		top: map[string]bool{}}
	out, err = goList(dir, "list", "-deps", "-json=ImportPath,Standard,Imports,Deps,Module", "./...")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Standard   bool
			Imports    []string
			Deps       []string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("read go list: %w", err)
		}
		mod.imports[p.ImportPath] = p.Imports
		if p.Standard {
			mod.Standard[p.ImportPath] = true
		}
		if p.Module != nil && p.Module.Path == mod.Path {
			mod.Packages = append(mod.Packages, Package{ImportPath: p.ImportPath, Imports: p.Imports, Deps: p.Deps})
			rel, _ := mod.rel(p.ImportPath)
			first, _, _ := strings.Cut(rel, "/")
			mod.top[first] = true
		}
	}
	return mod, nil
}

func goList(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// rel returns path inside the module, and whether it is inside.
func (m *Module) rel(path string) (string, bool) {
	if path == m.Path {
		return "", true
	}
	if r, ok := strings.CutPrefix(path, m.Path+"/"); ok {
		return r, true
	}
	return "", false
}

// matches reports whether the import path matches p. A pattern whose first element is a
// top-level folder of the module names packages of the module only: "internal/..." is never
// the standard library's internal packages.
func (m *Module) matches(p Pattern, path string) bool {
	rel, inside := m.rel(path)
	switch p {
	case "std":
		return m.Standard[path]
	case "third-party":
		return !inside && !m.Standard[path]
	}
	first, _, _ := strings.Cut(string(p), "/")
	if m.top[first] != inside {
		return false
	}
	target := path
	if inside {
		target = rel
	}
	if base, ok := strings.CutSuffix(string(p), "/..."); ok {
		return target == base || strings.HasPrefix(target, base+"/")
	}
	return target == string(p)
}

// governs reports whether rule r applies to package path.
func (m *Module) governs(r Rule, path string) bool {
	return m.matches(r.Subject, path) != r.Except
}

// Violation is one import that breaks a rule.
type Violation struct {
	Rule    Rule
	Package string
	Import  string
	// Chain is the imports from Package to Import.
	Chain []string
}

func (v Violation) String() string {
	return fmt.Sprintf("rules.txt:%d (%s): %s imports %s\n\tvia %s", v.Rule.Line, v.Rule.Text, v.Package, v.Import,
		strings.Join(v.Chain, " -> "))
}

// Check returns every import of the module's packages that breaks a rule.
func Check(m *Module, rules []Rule) []Violation {
	var out []Violation
	for _, p := range m.Packages {
		for _, r := range rules {
			if !m.governs(r, p.ImportPath) {
				continue
			}
			for _, dep := range p.Deps {
				if dep == p.ImportPath || (r.Only && !r.Except && m.matches(r.Subject, dep)) {
					continue
				}
				hit := slices.ContainsFunc(r.Patterns, func(pat Pattern) bool { return m.matches(pat, dep) })
				if hit != r.Only {
					out = append(out, Violation{Rule: r, Package: p.ImportPath, Import: dep, Chain: m.chain(p.ImportPath, dep)})
				}
			}
		}
	}
	return out
}

// chain finds a shortest path of imports from one package to another.
func (m *Module) chain(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, next := range m.imports[cur] {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return []string{from, to}
}
