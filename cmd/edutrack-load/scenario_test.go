package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edutrack/edutrack/internal/auth"
)

// startEduTrack builds cmd/edutrack and starts it on a free port with a data dir of its own,
// authentication on and the rate limits at their defaults, with env added. It returns the
// server's base URL, its signing key's file and its process id.
func startEduTrack(t *testing.T, env ...string) (base, keyFile string, pid int) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "edutrack")
	if out, err := exec.Command("go", "build", "-o", bin, "../edutrack").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/edutrack: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "EDUTRACK_DATA_DIR="+data, "EDUTRACK_HTTP_ADDR="+addr, "EDUTRACK_LOG_LEVEL=warn",
		"EDUTRACK_ANCHOR_KEY=an-anchor-key-for-the-load-tool-tests-only")
	cmd.Env = append(cmd.Env, env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer /healthz in 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return base, filepath.Join(data, auth.KeyFileName), cmd.Process.Pid
}

func TestScenario(t *testing.T) {
	base, key, pid := startEduTrack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-addr", base, "-token-key", key, "-phases", "scenario", "-prefix", "ts", "-json",
		"-users", "12", "-instructors", "2", "-think", "100ms", "-warmup", "1s", "-duration", "3s",
		"-scenario-courses", "3", "-scenario-modules", "3", "-server-pids", strconv.Itoa(pid)}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rep := decodeReport(t, out.String())
	p, ok := rep.phase(phaseScenario)
	if !ok || p.Scenario == nil {
		t.Fatalf("no scenario phase in the report:\n%s", out.String())
	}
	sr := p.Scenario
	if p.Errors != 0 || sr.TooMany != 0 {
		t.Errorf("%d errors, %d of them 429: want none at this pace", p.Errors, sr.TooMany)
	}
	// 12 users thinking 100 ms on average offer about 120 requests a second; the server is shared.
	if sr.OfferedRate < 10 || sr.AnsweredRate != sr.OfferedRate {
		t.Errorf("offered %.1f/s, answered %.1f/s: want over 10/s, all answered", sr.OfferedRate, sr.AnsweredRate)
	}
	if sr.StreamsOpen != 12 || sr.StreamsEnded != 0 {
		t.Errorf("%d streams open, %d ended; want every user's open to the end", sr.StreamsOpen, sr.StreamsEnded)
	}
	if sr.Messages == 0 {
		t.Error("no live message reached a user: their own enrollments and completions should")
	}
	var routes []string
	for _, r := range sr.Routes {
		routes = append(routes, r.Route)
		if r.Requests > 0 && r.Errors < r.Requests && r.LatencyMs.P50 <= 0 {
			t.Errorf("%s: p50 %.3f ms", r.Route, r.LatencyMs.P50)
		}
	}
	for _, want := range []route{routeCourse, routeEnroll, routeComplete, routeDashboard, routeCourseStats} {
		if !slices.Contains(routes, want.String()) {
			t.Errorf("no request of %s in the measured time; routes: %q", want, routes)
		}
	}
	if sr.Cache == nil || sr.Cache.HitRatePercent == nil {
		t.Errorf("no cache hit rate: %+v", sr.Cache)
	}
	if len(sr.Servers) != 1 || sr.Servers[0].Error != "" || sr.Servers[0].PeakRSSMiB <= 0 {
		t.Errorf("server from /metrics: %+v", sr.Servers)
	}
	if sr.Servers[0].AppendP95Ms <= 0 {
		t.Errorf("no event log append P95 from /metrics: %+v", sr.Servers[0])
	}
	if sr.ToolCPUCores <= 0 {
		t.Errorf("the load tool's CPU: %.3f cores", sr.ToolCPUCores)
	}
	if len(sr.Processes) != 1 || sr.Processes[0].Error != "" || sr.Processes[0].PeakRSSMiB <= 0 || sr.Processes[0].CPUCores <= 0 {
		t.Errorf("process from /proc: %+v", sr.Processes)
	}
}

// With the defaults, the write phase with tokens meets no 429 when its commands spread over
// enough learners: each goes as its learner, within the learner's budget, and authenticated
// requests do not spend the address's budget, which one address's hundreds a second would.
func TestWriteWithTokens(t *testing.T) {
	base, key, _ := startEduTrack(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-addr", base, "-token-key", key, "-phases", "healthz,write", "-json",
		"-clients", "4", "-courses", "4", "-modules", "3", "-learners", "32", "-duration", "1s", "-warmup", "0", "-prefix", "tw"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rep := decodeReport(t, out.String())
	for _, name := range []string{phaseWrite} {
		if p, ok := rep.phase(name); !ok || p.Requests == 0 || p.Errors != 0 {
			t.Errorf("%s phase: %+v", name, p)
		}
	}
}

func TestCourseImage(t *testing.T) {
	for _, c := range []struct {
		detail string
		want   string
	}{
		{`{"id":"c"}`, ""},
		{`{"image":"/media/abc.png"}`, "/media/abc.png"},
		{`{"image":{"url":"/media/k1"}}`, "/media/k1"},
		{`{"image":"https://elsewhere.test/x.png"}`, ""},
		{`{"image":null}`, ""},
	} {
		got, ok := courseImage([]byte(c.detail))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("courseImage(%s) = %q, %v; want %q", c.detail, got, ok, c.want)
		}
	}
}

func TestCertificateOnDashboard(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	none := `{"enrollments":[{"courseId":"a","certificate":null}]}`
	if got, ok := certificateOnDashboard([]byte(none), rng); ok {
		t.Errorf("a dashboard without certificates gave %q", got)
	}
	one := fmt.Sprintf(`{"enrollments":[{"certificate":null},{"certificate":{"id":"x","url":%q}}]}`, "/v1/learners/l/certificates/c")
	if got, ok := certificateOnDashboard([]byte(one), rng); !ok || got != "/v1/learners/l/certificates/c" {
		t.Errorf("certificateOnDashboard = %q, %v", got, ok)
	}
}
