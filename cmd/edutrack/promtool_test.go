package main

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// promtool returns Prometheus's promtool: EDUTRACK_PROMTOOL, else the one on PATH. Without it
// the test fails, saying how to get it: `make test` installs it (.ci/deps).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EDUTRACK_PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is needed to check /metrics: run the suite with `make test` (which installs it through .ci/deps), or set EDUTRACK_PROMTOOL")
	}
	return p
}

// checkMetrics fails unless promtool finds nothing to say of the exposition in body: names,
// units, help texts, counters' _total, and no label that breaks the conventions.
func checkMetrics(t *testing.T, body []byte) {
	t.Helper()
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
