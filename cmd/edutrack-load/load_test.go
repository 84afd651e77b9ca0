package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/projections/documents"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var smallRun = []string{"-duration", "300ms", "-warmup", "0", "-clients", "4",
	"-courses", "2", "-modules", "3", "-learners", "2", "-prefix", "t1", "-json"}

func TestRun(t *testing.T) {
	t.Run("measures_both_phases_and_completes_modules_in_order", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		srv := httptest.NewUnstartedServer(fake)
		var conns atomic.Int64
		srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"-addr", srv.URL}, smallRun...), &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Log("\n" + out.String())

		rep := decodeReport(t, out.String())
		for _, name := range []string{phaseHealthz, phaseWrite} {
			p, ok := rep.phase(name)
			if !ok {
				t.Fatalf("report has no %s phase", name)
			}
			if p.Rate <= 0 || p.Requests == 0 {
				t.Errorf("%s: rate %.1f/s over %d requests, want both above zero", name, p.Rate, p.Requests)
			}
			if p.Errors != 0 {
				t.Errorf("%s: %d errors, first: %s", name, p.Errors, p.FirstError)
			}
		}
		if rep.WriteHealthzRatio == nil {
			t.Error("report has no write/healthz ratio")
		}
		for _, want := range []string{"GOMAXPROCS=", "NumCPU=", "healthz (GET /healthz)",
			"write (EnrollStudent + CompleteModule)", "write/healthz ratio: "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("text report lacks %q", want)
			}
		}
		// At most setupWorkers requests are in flight at once; a few more connections can come
		// from dials that lost the race to a connection going idle. Without reuse there would be
		// one per request.
		if n := conns.Load(); n > 2*setupWorkers {
			t.Errorf("server accepted %d connections for %d requests, want at most %d", n,
				rep.Phases[0].Requests+rep.Phases[1].Requests, 2*setupWorkers)
		}
		if got := fake.healthzCount(); got < rep.Phases[0].Requests {
			t.Errorf("fake answered %d healthz requests, report counts %d", got, rep.Phases[0].Requests)
		}

		fake.mu.Lock()
		defer fake.mu.Unlock()
		modules := []string{"m001", "m002", "m003"}
		for i := range 4 * 2 {
			learner := fmt.Sprintf("t1-l%04d", i+1)
			if fake.users[learner] != "learner" {
				t.Errorf("learner %s was not registered", learner)
			}
			enrolled, completed := 0, 0
			for _, course := range []string{"t1-c001", "t1-c002"} {
				done, ok := fake.progress[progressKey{learner, course}]
				if !ok {
					continue
				}
				enrolled++
				completed += len(done)
				// The fake refuses a module out of order, so this also holds for zero errors;
				// checking it here says what the fake saw.
				if diff := cmp.Diff(modules[:len(done)], done); diff != "" {
					t.Errorf("%s in %s completed out of order (-want +got):\n%s", learner, course, diff)
				}
			}
			if enrolled == 0 || completed == 0 {
				t.Errorf("learner %s: %d enrollments, %d completions; want some of each", learner, enrolled, completed)
			}
		}
	})

	t.Run("fails_when_a_command_fails", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		// The setup completes at most the first two modules, so only the write phase fails.
		fake.failModule = "m003"
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		err := run(t.Context(), append([]string{"-addr", srv.URL, "-phases", "write"}, smallRun...), &out)
		if err == nil || !strings.Contains(err.Error(), "write phase") {
			t.Fatalf("run returned %v, want a write phase error\n%s", err, out.String())
		}
		p, _ := decodeReport(t, out.String()).phase(phaseWrite)
		if p.ErrorStatuses[http.StatusInternalServerError] == 0 {
			t.Errorf("write phase: errors by status %v, want some 500", p.ErrorStatuses)
		}
		if !strings.Contains(out.String(), "HTTP 500") {
			t.Errorf("text report does not show the failing status:\n%s", out.String())
		}
	})

	t.Run("runs_only_the_phases_asked_for", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"-addr", srv.URL, "-phases", "healthz"}, smallRun...), &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		rep := decodeReport(t, out.String())
		if len(rep.Phases) != 1 || rep.Phases[0].Name != phaseHealthz {
			t.Errorf("phases = %+v, want healthz alone", rep.Phases)
		}
		if rep.WriteHealthzRatio != nil || strings.Contains(out.String(), "write/healthz ratio") {
			t.Error("a ratio was reported without a write phase")
		}
		if n := fake.userCount(); n != 0 {
			t.Errorf("setup registered %d users for a healthz-only run", n)
		}
	})

	t.Run("measures_reads_static_and_lag", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		// The static server serves the saved file as nginx would: read on every request, absent
		// until the setup wrote it.
		saved := filepath.Join(t.TempDir(), "course.json")
		static := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, saved)
		}))
		t.Cleanup(static.Close)

		var out bytes.Buffer
		args := append([]string{"-addr", srv.URL, "-phases", "reads,static,lag", "-static-url", static.URL + "/course.json",
			"-save-body", saved, "-lag-rate", "200"}, smallRun...)
		// Courses enough that every lag command appends: one that changes nothing would be
		// visible at once.
		args = append(args, "-courses", "6")
		if err := run(t.Context(), args, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Log("\n" + out.String())
		rep := decodeReport(t, out.String())
		if len(rep.Warnings) > 0 {
			t.Errorf("warnings: %q", rep.Warnings)
		}
		for _, name := range []string{phaseReads, phaseStatic, phaseLag} {
			p, ok := rep.phase(name)
			if !ok {
				t.Fatalf("report has no %s phase", name)
			}
			if p.Rate <= 0 || p.Requests == 0 {
				t.Errorf("%s: rate %.1f/s over %d requests, want both above zero", name, p.Rate, p.Requests)
			}
			if p.Errors != 0 {
				t.Errorf("%s: %d errors, first: %s", name, p.Errors, p.FirstError)
			}
		}

		body, err := os.ReadFile(saved)
		if err != nil {
			t.Fatal(err)
		}
		var detail documents.CourseDetail
		if err := json.Unmarshal(body, &detail); err != nil || detail.ID != "t1-c001" || len(detail.Modules) != 3 {
			t.Errorf("saved body is not the detail of t1-c001 with 3 modules (%v):\n%s", err, body)
		}
		if rep.SavedBody == nil || rep.SavedBody.Bytes != len(body) {
			t.Errorf("report says it saved %+v, the file has %d bytes", rep.SavedBody, len(body))
		}

		reads, _ := rep.phase(phaseReads)
		if reads.Ops[opCourseDetail.String()] == 0 || reads.Ops[opDashboard.String()] == 0 {
			t.Errorf("reads: ops %v, want course details and dashboards", reads.Ops)
		}
		if reads.BytesPerResponse <= 0 {
			t.Errorf("reads: %.0f bytes per response", reads.BytesPerResponse)
		}
		// Every read of the fake is a cache lookup, and with no warmup the counters' window is
		// exactly the phase.
		c := reads.Cache
		if c == nil || c.HitRatePercent == nil || c.Error != "" {
			t.Fatalf("reads: cache %+v, want a hit rate", c)
		}
		if c.Hits+c.Misses != reads.Requests || c.Hits == 0 {
			t.Errorf("reads: %d hits + %d misses, want %d reads, most of them hits", c.Hits, c.Misses, reads.Requests)
		}
		if hits, misses := fake.cacheTotals(); c.Hits > hits || c.Misses > misses {
			t.Errorf("reads: %d hits and %d misses, more than the fake ever counted (%d, %d)", c.Hits, c.Misses, hits, misses)
		}
		want := fmt.Sprintf("cache hit rate: %.1f%% (hits %d, misses %d)", *c.HitRatePercent, c.Hits, c.Misses)
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q", want)
		}

		st, _ := rep.phase(phaseStatic)
		if st.BytesPerResponse != float64(len(body)) {
			t.Errorf("static: %.1f bytes per response, want the saved %d", st.BytesPerResponse, len(body))
		}
		if rep.ReadsStaticRatio == nil || !strings.Contains(out.String(), "reads/static ratio: ") {
			t.Error("report has no reads/static ratio")
		}

		lag, _ := rep.phase(phaseLag)
		if lag.Lag == nil || lag.Lag.Reads != lag.Requests || lag.Lag.ReadErrors != 0 || lag.Lag.VisibleMs.Max <= 0 {
			t.Errorf("lag: %d commands, reads %+v; want a timed read after every command", lag.Requests, lag.Lag)
		}
		// Each client has its slots at 200/s over all 4 clients from the start of the phase, and
		// never catches up on missed ones.
		if limit := int64(200*0.3) + 4; lag.Requests > limit {
			t.Errorf("lag: %d commands, more than the %d slots of the pace", lag.Requests, limit)
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if fake.minPositionReads < lag.Lag.Reads {
			t.Errorf("fake saw %d dashboard reads with minPosition, the report counts %d", fake.minPositionReads, lag.Lag.Reads)
		}
		for _, m := range fake.positionMismatches {
			t.Error(m)
		}
	})

	t.Run("reports_appends_not_visible_within_the_wait", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		fake.hideDashboards = true
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		err := run(t.Context(), append([]string{"-addr", srv.URL, "-phases", "lag", "-lag-rate", "200"}, smallRun...), &out)
		if err == nil || !strings.Contains(err.Error(), "not visible within the wait") {
			t.Fatalf("run returned %v, want a lag phase error\n%s", err, out.String())
		}
		lag, _ := decodeReport(t, out.String()).phase(phaseLag)
		if lag.Errors != 0 || lag.Lag == nil || lag.Lag.NotVisible == 0 || lag.Lag.NotVisible != lag.Lag.ReadErrors {
			t.Errorf("lag: %d command errors, reads %+v; want every read not visible", lag.Errors, lag.Lag)
		}
		if !strings.Contains(out.String(), "of which not visible within the wait") {
			t.Errorf("text report does not say reads were not visible:\n%s", out.String())
		}
	})

	t.Run("stops_at_once_when_the_server_is_not_there", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()

		err := run(t.Context(), []string{"-addr", addr}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "not answering") {
			t.Errorf("run returned %v, want a not answering error", err)
		}
	})

	t.Run("stops_when_interrupted", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(newFakeServer())
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()

		err := run(ctx, []string{"-addr", srv.URL, "-phases", "healthz", "-duration", "1h"}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "healthz phase") {
			t.Errorf("run returned %v, want the healthz phase to end with the context", err)
		}
	})
}

func TestParseConfig(t *testing.T) {
	now := time.Unix(1732550000, 0)

	t.Run("defaults_to_both_phases_and_a_time_prefix", func(t *testing.T) {
		cfg, err := parseConfig(nil, now)
		if err != nil {
			t.Fatal(err)
		}
		want := config{addr: "http://127.0.0.1:8080", clients: 64, duration: 10 * time.Second,
			warmup: 2 * time.Second, courses: 20, modules: 50, learners: 8, prefix: "r1732550000",
			phases: []string{"healthz", "write"}, readMix: 0.5, zipfS: 1.1, lagRate: 1000,
			liveConns: 10000, liveAddrs: []string{"http://127.0.0.1:8080"},
			smtpListen: "127.0.0.1:2525", jobsEmails: 2000, jobsCertificates: 1000, jobsIdle: 100,
			users: 10000, instructors: 100, think: 4 * time.Second, scenarioCourses: 200, scenarioModules: 5}
		if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(config{})); diff != "" {
			t.Errorf("defaults (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"rejects_an_unknown_phase", []string{"-phases", "healthz,read"}, `unknown phase "read"`},
		{"rejects_a_phase_given_twice", []string{"-phases", "write,write"}, `"write" given twice`},
		{"rejects_a_prefix_the_server_would_refuse", []string{"-prefix", "Run_1"}, "-prefix"},
		{"rejects_an_address_without_scheme", []string{"-addr", "127.0.0.1:8080"}, "-addr"},
		{"rejects_zero_clients", []string{"-clients", "0"}, "-clients"},
		{"rejects_a_static_phase_without_its_url", []string{"-phases", "reads,static"}, "needs -static-url"},
		{"rejects_a_static_url_without_scheme", []string{"-phases", "static", "-static-url", "localhost/x"}, "-static-url"},
		{"rejects_a_read_mix_above_one", []string{"-read-mix", "50"}, "-read-mix"},
		{"rejects_a_zipf_exponent_of_one", []string{"-zipf-s", "1"}, "-zipf-s"},
		{"rejects_a_lag_rate_of_zero", []string{"-lag-rate", "0"}, "-lag-rate"},
		{"rejects_stray_arguments", []string{"write"}, "unexpected arguments"},
		{"rejects_zero_live_streams", []string{"-live-conns", "0"}, "-live-conns"},
		{"rejects_a_live_address_that_is_not_plain_http", []string{"-live-addrs", "http://a:1,https://b:2"}, `-live-addrs "https://b:2"`},
		{"rejects_a_live_address_with_a_path", []string{"-live-addrs", "http://a:1/v1"}, "-live-addrs"},
		{"rejects_a_scenario_of_instructors_only", []string{"-users", "5", "-instructors", "5"}, "-instructors"},
		{"rejects_fewer_scenario_courses_than_instructors", []string{"-instructors", "300"}, "-scenario-courses"},
		{"rejects_a_think_time_of_zero", []string{"-think", "0s"}, "-think"},
		{"rejects_a_read_address_with_a_path", []string{"-read-addrs", "http://a:1/v1"}, "-read-addrs"},
		{"rejects_a_server_pid_that_is_no_number", []string{"-server-pids", "12,x"}, "-server-pids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}

	t.Run("spreads_live_streams_over_the_addresses_given", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-live-addrs", " http://a:1/, http://b:2"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"http://a:1", "http://b:2"}, cfg.liveAddrs); diff != "" {
			t.Errorf("live addresses (-want +got):\n%s", diff)
		}
	})

	t.Run("rejects_a_prefix_that_makes_ids_too_long", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-prefix", strings.Repeat("a", 60)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newFixture(cfg); err == nil {
			t.Error("newFixture accepted ids longer than 64 characters")
		}
	})

	t.Run("prints_usage_for_-h", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-h"}, &out); err != nil {
			t.Fatalf("run -h: %v", err)
		}
		if !strings.Contains(out.String(), "Usage: edutrack-load") || !strings.Contains(out.String(), "-clients") {
			t.Errorf("usage:\n%s", out.String())
		}
	})
}

func TestPairOrder(t *testing.T) {
	t.Run("covers_every_pair_once", func(t *testing.T) {
		seen := map[pair]int{}
		for _, p := range pairOrder(3, 8, 20) {
			seen[p]++
		}
		if len(seen) != 8*20 {
			t.Errorf("%d distinct pairs, want %d", len(seen), 8*20)
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("pair %+v walked %d times", p, n)
			}
		}
	})

	t.Run("is_the_same_for_a_client_on_every_run", func(t *testing.T) {
		if diff := cmp.Diff(pairOrder(5, 8, 20), pairOrder(5, 8, 20), cmp.AllowUnexported(pair{})); diff != "" {
			t.Errorf("two orders for client 5 (-first +second):\n%s", diff)
		}
	})

	t.Run("differs_between_clients", func(t *testing.T) {
		if cmp.Equal(pairOrder(0, 8, 20), pairOrder(1, 8, 20), cmp.AllowUnexported(pair{})) {
			t.Error("clients 0 and 1 walk pairs in the same order")
		}
	})
}

func TestWriteClient(t *testing.T) {
	t.Run("sends_every_fresh_command_once_and_skips_the_seeds", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-clients", "3", "-courses", "4", "-modules", "3", "-learners", "2", "-prefix", "t"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		fx, err := newFixture(cfg)
		if err != nil {
			t.Fatal(err)
		}
		seeded := map[string]bool{}
		for j, l := range fx.learners[1] {
			for _, s := range fx.seeds(1, j) {
				seeded["/v1/courses/"+fx.courses[s.course]+"/enrollments "+l] = true
				for _, m := range fx.modules[:s.done] {
					seeded["/v1/learners/"+l+"/courses/"+fx.courses[s.course]+"/modules/"+m+"/complete"] = true
				}
			}
		}
		w := writeClients(nil, fx, nil)[1]
		sent := map[string]bool{}
		for range capacity(fx) {
			if w.wrapped {
				t.Fatalf("wrapped after %d of %d commands", len(sent), capacity(fx))
			}
			_, path, body, learner := w.command()
			key := path
			if body != nil {
				key += " " + fx.learners[1][learner]
			}
			if seeded[key] || sent[key] {
				t.Errorf("%s sent again (seeded %t)", key, seeded[key])
			}
			sent[key] = true
		}
		if !w.wrapped {
			t.Errorf("did not wrap after its capacity of %d commands", capacity(fx))
		}
		if want := 2*4*(1+3) - len(seeded); len(sent) != want {
			t.Errorf("%d distinct commands, want %d", len(sent), want)
		}
	})
}

func TestReadClients(t *testing.T) {
	cfg, err := parseConfig([]string{"-clients", "2", "-prefix", "t"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fx, err := newFixture(cfg)
	if err != nil {
		t.Fatal(err)
	}
	draw := func(client int) []string {
		c := readClients(nil, fx, 2, 0.5, 1.1, nil)[client].(*readClient)
		var paths []string
		for range 2000 {
			_, p, _ := c.path()
			paths = append(paths, p)
		}
		return paths
	}

	t.Run("draws_the_same_ids_for_a_client_on_every_run", func(t *testing.T) {
		if diff := cmp.Diff(draw(1), draw(1)); diff != "" {
			t.Errorf("two draws for client 1 (-first +second):\n%s", diff)
		}
	})

	t.Run("draws_other_ids_for_another_client", func(t *testing.T) {
		if cmp.Equal(draw(0), draw(1)) {
			t.Error("clients 0 and 1 draw the same ids")
		}
	})

	t.Run("reads_the_first_ids_most", func(t *testing.T) {
		counts := map[string]int{}
		for _, p := range draw(0) {
			counts[p]++
		}
		hottest := slices.MaxFunc(slices.Collect(maps.Keys(counts)), func(a, b string) int { return counts[a] - counts[b] })
		if hottest != "/v1/courses/t-c001" && hottest != "/v1/learners/t-l0001/dashboard" {
			t.Errorf("hottest read %s (%d of 2000), want the first course or learner", hottest, counts[hottest])
		}
		if counts["/v1/courses/t-c001"] <= counts["/v1/courses/t-c020"] {
			t.Errorf("course 1 read %d times, course 20 %d times", counts["/v1/courses/t-c001"], counts["/v1/courses/t-c020"])
		}
	})
}

func TestParseCacheCounters(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want cacheCount
	}{
		{"sums_over_read_models", `# HELP edutrack_cache_hits_total Reads served from the cache, by read model.
# TYPE edutrack_cache_hits_total counter
edutrack_cache_hits_total{read_model="course_details"} 1.234567e+06
edutrack_cache_hits_total{read_model="dashboards"} 3
# TYPE edutrack_cache_misses_total counter
edutrack_cache_misses_total{read_model="dashboards"} 7
`, cacheCount{hits: 1234570, misses: 7}},
		{"counts_absent_counters_as_zero", "# TYPE go_goroutines gauge\ngo_goroutines 12\n", cacheCount{}},
		{"ignores_metrics_that_share_a_prefix", "edutrack_cache_hits_total_created 1.7e+09\nedutrack_cache_hits 5\n" +
			"edutrack_cache_misses_total 2\n", cacheCount{misses: 2}},
		{"reads_labels_with_spaces_and_a_timestamp", `edutrack_cache_hits_total{read_model="a b}",x="y"} 4 1732550000000` + "\n",
			cacheCount{hits: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCacheCounters(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(cacheCount{})); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("rejects_a_value_that_is_not_a_number", func(t *testing.T) {
		if _, err := parseCacheCounters(`edutrack_cache_hits_total{read_model="x"} many`); err == nil {
			t.Error("parsed a value of \"many\"")
		}
	})
}

// decodeReport reads the JSON report that -json prints after the text one.
func decodeReport(t *testing.T, out string) *report {
	t.Helper()
	i := strings.LastIndex(out, "\n{\n")
	if i < 0 {
		t.Fatalf("no JSON report in:\n%s", out)
	}
	var rep report
	if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("decode JSON report: %v\n%s", err, out[i:])
	}
	return &rep
}

// fakeServer implements just enough of the EduTrack API for the load tool: it keeps state in
// memory, checks the fields and ids the real server checks, and refuses to complete a module
// before the ones ahead of it. Its read models are always up to date with its log, so a read
// with a minPosition past the log waits for the position a while and then answers 503, as the
// real server does. It caches the documents it serves, drops those a command changes, and counts
// the cache's hits and misses on /metrics.
type fakeServer struct {
	mux *http.ServeMux

	// failModule, when set, makes every completion of that module answer 500.
	failModule string
	// hideDashboards, when set, makes every dashboard read with a minPosition answer 503.
	hideDashboards bool

	mu       sync.Mutex
	users    map[string]string // id -> role
	names    map[string]string // user id -> name
	courses  map[string]*fakeCourse
	progress map[progressKey][]string // completed modules, in order; present once enrolled
	enrolled map[string][]string      // learner -> courses, in the order enrolled
	healthz  int64
	position int64

	cache  map[string][]byte // read model + ":" + id -> body
	hits   map[string]int64  // by read model
	misses map[string]int64  // by read model

	// lastPosition is the position the latest command about a learner answered.
	lastPosition map[string]int64
	// minPositionReads counts dashboard reads with a minPosition; positionMismatches, those whose
	// minPosition was not the position of the latest command about their learner.
	minPositionReads   int64
	positionMismatches []string

	live fakeLive
}

type fakeCourse struct {
	id, title, description, category, level, instructor string
	modules                                             []string
	published                                           bool
	publishedAt                                         time.Time
}

type progressKey struct{ learner, course string }

var fakeID = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

func newFakeServer() *fakeServer {
	f := &fakeServer{
		mux:      http.NewServeMux(),
		users:    map[string]string{},
		names:    map[string]string{},
		courses:  map[string]*fakeCourse{},
		progress: map[progressKey][]string{},
		enrolled: map[string][]string{},
		cache:    map[string][]byte{},
		hits:     map[string]int64{},
		misses:   map[string]int64{},

		lastPosition: map[string]int64{},
		live:         newFakeLive(),
	}
	f.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.healthz++
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	f.mux.HandleFunc("POST /v1/users", f.handle(http.StatusCreated, f.registerUser))
	f.mux.HandleFunc("POST /v1/courses", f.handle(http.StatusCreated, f.createCourse))
	f.mux.HandleFunc("POST /v1/courses/{id}/modules", f.handle(http.StatusCreated, f.addModule))
	f.mux.HandleFunc("POST /v1/courses/{id}/publish", f.handle(http.StatusOK, f.publish))
	f.mux.HandleFunc("POST /v1/courses/{id}/enrollments", f.handle(http.StatusCreated, f.enroll))
	f.mux.HandleFunc("POST /v1/learners/{learnerId}/courses/{courseId}/modules/{moduleId}/complete",
		f.handle(http.StatusOK, f.complete))

	f.mux.HandleFunc("GET /v1/courses", f.read("", f.catalog))
	f.mux.HandleFunc("GET /v1/courses/{id}", f.read(documents.CourseDetails, f.courseDetail))
	f.mux.HandleFunc("GET /v1/courses/{id}/stats", f.read(documents.Stats, f.stats))
	f.mux.HandleFunc("GET /v1/courses/{id}/roster", f.read("", f.roster))
	f.mux.HandleFunc("GET /v1/learners/{id}/dashboard", f.read(documents.Dashboards, f.dashboard))
	f.mux.HandleFunc("GET /v1/live", f.stream)
	f.mux.HandleFunc("GET /metrics", f.metrics)
	return f
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *fakeServer) healthzCount() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthz
}

func (f *fakeServer) userCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.users)
}

// fakeProblem is an error answered as application/problem+json.
type fakeProblem struct {
	status int
	detail string
}

func problem(status int, format string, args ...any) *fakeProblem {
	return &fakeProblem{status: status, detail: fmt.Sprintf(format, args...)}
}

// fakeOK is a route's success: the id it changed, a status other than the route's usual one,
// fields beyond id, version and position, the learner the command is about, and the read model
// documents it changed (read model + ":" + id).
type fakeOK struct {
	id      string
	status  int
	extra   map[string]any
	learner string
	changed []string
}

// handle runs a route under the lock and answers its result, with status unless the route says
// otherwise.
func (f *fakeServer) handle(status int, route func(*http.Request) (fakeOK, *fakeProblem)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok, p := route(r)
		if p == nil {
			f.position++
			if ok.learner != "" {
				f.lastPosition[ok.learner] = f.position
			}
			for _, key := range ok.changed {
				delete(f.cache, key)
			}
			if ok.learner != "" && slices.Contains(ok.changed, documents.Dashboards+":"+ok.learner) {
				f.announce(ok.learner, f.position)
			}
		}
		position := f.position
		f.mu.Unlock()

		if p != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(p.status)
			_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(p.status), "status": p.status, "detail": p.detail})
			return
		}
		body := map[string]any{"id": ok.id, "version": 1, "position": position}
		maps.Copy(body, ok.extra)
		code := status
		if ok.status != 0 {
			code = ok.status
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

// decode reads a JSON body into v, refusing unknown fields.
func decode(r *http.Request, v any) *fakeProblem {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return problem(http.StatusUnsupportedMediaType, "content type %q", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem(http.StatusBadRequest, "decode: %v", err)
	}
	return nil
}

func checkIDs(ids ...string) *fakeProblem {
	for _, id := range ids {
		if !fakeID.MatchString(id) {
			return problem(http.StatusBadRequest, "malformed id %q", id)
		}
	}
	return nil
}

func (f *fakeServer) registerUser(r *http.Request) (fakeOK, *fakeProblem) {
	var u newUser
	if p := decode(r, &u); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"name": u.Name, "email": u.Email, "role": u.Role}); p != nil {
		return fakeOK{}, p
	}
	if p := checkIDs(u.ID); p != nil {
		return fakeOK{}, p
	}
	if u.Role != "learner" && u.Role != "instructor" {
		return fakeOK{}, problem(http.StatusBadRequest, "role %q", u.Role)
	}
	if !strings.Contains(u.Email, "@") {
		return fakeOK{}, problem(http.StatusBadRequest, "email %q", u.Email)
	}
	if _, ok := f.users[u.ID]; ok {
		return fakeOK{}, problem(http.StatusConflict, "user %s exists", u.ID)
	}
	f.users[u.ID] = u.Role
	f.names[u.ID] = u.Name
	return fakeOK{id: u.ID}, nil
}

func (f *fakeServer) createCourse(r *http.Request) (fakeOK, *fakeProblem) {
	var c newCourse
	if p := decode(r, &c); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"title": c.Title, "category": c.Category, "level": c.Level}); p != nil {
		return fakeOK{}, p
	}
	if p := checkIDs(c.ID, c.InstructorID); p != nil {
		return fakeOK{}, p
	}
	switch c.Level {
	case "beginner", "intermediate", "advanced":
	default:
		return fakeOK{}, problem(http.StatusBadRequest, "level %q", c.Level)
	}
	if f.users[c.InstructorID] != "instructor" {
		return fakeOK{}, problem(http.StatusNotFound, "no instructor %s", c.InstructorID)
	}
	if _, ok := f.courses[c.ID]; ok {
		return fakeOK{}, problem(http.StatusConflict, "course %s exists", c.ID)
	}
	f.courses[c.ID] = &fakeCourse{id: c.ID, title: c.Title, description: c.Description, category: c.Category,
		level: c.Level, instructor: c.InstructorID}
	return fakeOK{id: c.ID}, nil
}

func (f *fakeServer) addModule(r *http.Request) (fakeOK, *fakeProblem) {
	var m newModule
	if p := decode(r, &m); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"title": m.Title}); p != nil {
		return fakeOK{}, p
	}
	id := r.PathValue("id")
	if p := checkIDs(id, m.ID); p != nil {
		return fakeOK{}, p
	}
	c, ok := f.courses[id]
	if !ok {
		return fakeOK{}, problem(http.StatusNotFound, "no course %s", id)
	}
	c.modules = append(c.modules, m.ID)
	return fakeOK{id: m.ID, changed: courseDocs(id)}, nil
}

func (f *fakeServer) publish(r *http.Request) (fakeOK, *fakeProblem) {
	id := r.PathValue("id")
	if p := checkIDs(id); p != nil {
		return fakeOK{}, p
	}
	c, ok := f.courses[id]
	switch {
	case !ok:
		return fakeOK{}, problem(http.StatusNotFound, "no course %s", id)
	case c.published:
		return fakeOK{}, problem(http.StatusConflict, "course %s is published", id)
	case len(c.modules) == 0:
		return fakeOK{}, problem(http.StatusConflict, "course %s has no modules", id)
	}
	c.published = true
	c.publishedAt = fakeTime(f.position + 1)
	return fakeOK{id: id, changed: courseDocs(id)}, nil
}

func (f *fakeServer) enroll(r *http.Request) (fakeOK, *fakeProblem) {
	var e enrollment
	if p := decode(r, &e); p != nil {
		return fakeOK{}, p
	}
	course := r.PathValue("id")
	if p := checkIDs(course, e.LearnerID); p != nil {
		return fakeOK{}, p
	}
	if c, ok := f.courses[course]; !ok || !c.published {
		return fakeOK{}, problem(http.StatusConflict, "course %s is not published", course)
	}
	if f.users[e.LearnerID] != "learner" {
		return fakeOK{}, problem(http.StatusNotFound, "no learner %s", e.LearnerID)
	}
	key := progressKey{e.LearnerID, course}
	if _, ok := f.progress[key]; ok {
		return fakeOK{id: e.LearnerID, status: http.StatusOK, learner: e.LearnerID}, nil
	}
	f.progress[key] = []string{}
	f.enrolled[e.LearnerID] = append(f.enrolled[e.LearnerID], course)
	return fakeOK{id: e.LearnerID, learner: e.LearnerID,
		changed: append(courseDocs(course), documents.Dashboards+":"+e.LearnerID)}, nil
}

func (f *fakeServer) complete(r *http.Request) (fakeOK, *fakeProblem) {
	learner, course, module := r.PathValue("learnerId"), r.PathValue("courseId"), r.PathValue("moduleId")
	if p := checkIDs(learner, course, module); p != nil {
		return fakeOK{}, p
	}
	if module == f.failModule {
		return fakeOK{}, problem(http.StatusInternalServerError, "failing %s on purpose", module)
	}
	key := progressKey{learner, course}
	done, ok := f.progress[key]
	if !ok {
		return fakeOK{}, problem(http.StatusConflict, "%s is not enrolled in %s", learner, course)
	}
	modules := f.courses[course].modules
	i := slices.Index(modules, module)
	switch {
	case i < 0:
		return fakeOK{}, problem(http.StatusNotFound, "no module %s in %s", module, course)
	case i < len(done):
		// Already completed: a no-op, as on the real server.
	case i > len(done):
		return fakeOK{}, problem(http.StatusConflict, "%s completes %s before %s", learner, module, modules[len(done)])
	default:
		f.progress[key] = append(done, module)
	}
	return fakeOK{id: learner, extra: map[string]any{"courseCompleted": len(f.progress[key]) == len(modules)},
		learner: learner, changed: append(courseDocs(course), documents.Dashboards+":"+learner)}, nil
}

// required checks that the named fields are non-empty.
func required(required map[string]string) *fakeProblem {
	for name, value := range required {
		if value == "" {
			return problem(http.StatusBadRequest, "%s is required", name)
		}
	}
	return nil
}

// courseDocs are the cached documents of a course.
func courseDocs(course string) []string {
	return []string{documents.CourseDetails + ":" + course, documents.Stats + ":" + course}
}

// fakeTime is the time of the event at a log position: deterministic, so equal state gives equal
// bytes.
func fakeTime(position int64) time.Time {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(position) * time.Second)
}

// fakeWait is how long a read waits for its minPosition; the real server waits 3s.
const fakeWait = 50 * time.Millisecond

// read serves a read route: it checks the query, waits for minPosition and answers the route's
// body, from the cache for a read model's documents.
func (f *fakeServer) read(model string, route func(*http.Request) ([]byte, *fakeProblem)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := f.serveRead(model, r, route)
		if p != nil {
			if p.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(p.status)
			_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(p.status), "status": p.status, "detail": p.detail})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

func (f *fakeServer) serveRead(model string, r *http.Request, route func(*http.Request) ([]byte, *fakeProblem)) ([]byte, *fakeProblem) {
	minPosition := int64(-1)
	if raw := r.URL.Query().Get("minPosition"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return nil, problem(http.StatusBadRequest, "minPosition %q", raw)
		}
		minPosition = n
	}
	if minPosition >= 0 && model == documents.Dashboards && f.hideDashboards {
		return nil, problem(http.StatusServiceUnavailable, "the read model has not reached position %d yet", minPosition)
	}
	deadline := time.Now().Add(fakeWait)
	for {
		f.mu.Lock()
		if f.position >= minPosition {
			break // holding the lock
		}
		f.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, problem(http.StatusServiceUnavailable, "the read model has not reached position %d yet", minPosition)
		}
		time.Sleep(time.Millisecond)
	}
	defer f.mu.Unlock()

	if model == documents.Dashboards && minPosition >= 0 {
		f.minPositionReads++
		id := r.PathValue("id")
		if last := f.lastPosition[id]; last != minPosition {
			f.positionMismatches = append(f.positionMismatches,
				fmt.Sprintf("dashboard of %s read with minPosition %d, its latest command answered %d", id, minPosition, last))
		}
	}
	if model == "" {
		return route(r)
	}
	key := model + ":" + r.PathValue("id")
	if body, ok := f.cache[key]; ok {
		f.hits[model]++
		return body, nil
	}
	f.misses[model]++
	body, p := route(r)
	if p == nil {
		f.cache[key] = body
	}
	return body, p
}

func (f *fakeServer) course(id string) (*fakeCourse, *fakeProblem) {
	c, ok := f.courses[id]
	if !ok {
		return nil, problem(http.StatusNotFound, "course not found")
	}
	return c, nil
}

// courseItem is a course as the catalog lists it.
func (f *fakeServer) courseItem(c *fakeCourse) documents.CatalogItem {
	item := documents.CatalogItem{ID: c.id, Title: c.title, Category: c.category, Level: c.level,
		Instructor: documents.Instructor{ID: c.instructor, Name: f.names[c.instructor]}, ModuleCount: len(c.modules)}
	completed := 0
	for key, done := range f.progress {
		if key.course == c.id {
			item.EnrollmentCount++
			if len(done) == len(c.modules) {
				completed++
			}
		}
	}
	item.CompletionRate = documents.Rate(completed, item.EnrollmentCount)
	if c.published {
		item.PublishedAt = &c.publishedAt
	}
	return item
}

func (f *fakeServer) courseDetail(r *http.Request) ([]byte, *fakeProblem) {
	c, p := f.course(r.PathValue("id"))
	if p != nil {
		return nil, p
	}
	d := documents.CourseDetail{CatalogItem: f.courseItem(c), Description: c.description, Status: "draft",
		Modules: []documents.Module{}, UpdatedAt: fakeTime(f.position)}
	if c.published {
		d.Status = "published"
	}
	for i, m := range c.modules {
		d.Modules = append(d.Modules, documents.Module{ID: m, Title: fmt.Sprintf("Module %d", i+1)})
	}
	return mustJSON(d), nil
}

func (f *fakeServer) stats(r *http.Request) ([]byte, *fakeProblem) {
	c, p := f.course(r.PathValue("id"))
	if p != nil {
		return nil, p
	}
	s := documents.CourseStats{CourseID: c.id, ModuleCompletions: []documents.ModuleCompletions{}}
	completions := map[string]int{}
	for key, done := range f.progress {
		if key.course != c.id {
			continue
		}
		s.Enrolled++
		if len(done) == len(c.modules) {
			s.Completed++
		} else {
			s.Active++
		}
		for _, m := range done {
			completions[m]++
		}
	}
	for _, m := range c.modules {
		s.ModuleCompletions = append(s.ModuleCompletions, documents.ModuleCompletions{ModuleID: m, Completions: completions[m]})
	}
	s.CompletionRate = documents.Rate(s.Completed, s.Enrolled)
	return mustJSON(s), nil
}

func (f *fakeServer) dashboard(r *http.Request) ([]byte, *fakeProblem) {
	id := r.PathValue("id")
	if f.users[id] != "learner" {
		return nil, problem(http.StatusNotFound, "learner not found")
	}
	d := documents.Dashboard{LearnerID: id, Name: f.names[id], Enrollments: []documents.Enrollment{}}
	for _, course := range f.enrolled[id] {
		c, done := f.courses[course], f.progress[progressKey{id, course}]
		e := documents.Enrollment{CourseID: course, Title: c.title, Status: "active", CompletedModules: append([]string{}, done...),
			ModuleCount: len(c.modules), Progress: documents.Rate(len(done), len(c.modules))}
		if len(done) == len(c.modules) {
			e.Status = "completed"
		}
		d.Enrollments = append(d.Enrollments, e)
	}
	return mustJSON(d), nil
}

// limit reads the limit parameter as the real server does.
func limit(r *http.Request) (int, *fakeProblem) {
	raw := r.URL.Query().Get("limit")
	if raw == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 100 {
		return 0, problem(http.StatusBadRequest, "limit %q", raw)
	}
	return n, nil
}

// page is one page of a listing, sorted by id; the cursor is the last id of the page.
func page[T any](items []T, id func(T) string, r *http.Request) ([]byte, *fakeProblem) {
	n, p := limit(r)
	if p != nil {
		return nil, p
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	if after := r.URL.Query().Get("cursor"); after != "" {
		items = slices.DeleteFunc(items, func(t T) bool { return id(t) <= after })
	}
	out := map[string]any{"items": items[:min(n, len(items))]}
	if len(items) > n {
		out["nextCursor"] = id(items[n-1])
	}
	return mustJSON(out), nil
}

func (f *fakeServer) catalog(r *http.Request) ([]byte, *fakeProblem) {
	items := []documents.CatalogItem{}
	for _, c := range f.courses {
		if c.published {
			items = append(items, f.courseItem(c))
		}
	}
	return page(items, func(i documents.CatalogItem) string { return i.ID }, r)
}

func (f *fakeServer) roster(r *http.Request) ([]byte, *fakeProblem) {
	c, p := f.course(r.PathValue("id"))
	if p != nil {
		return nil, p
	}
	items := []documents.RosterItem{}
	for key, done := range f.progress {
		if key.course == c.id {
			items = append(items, documents.RosterItem{LearnerID: key.learner, Name: f.names[key.learner], Status: "active",
				Progress: documents.Rate(len(done), len(c.modules))})
		}
	}
	return page(items, func(i documents.RosterItem) string { return i.LearnerID }, r)
}

// metrics answers the cache counters in the Prometheus text format, as client_golang writes
// them, between other metrics.
func (f *fakeServer) metrics(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP edutrack_cache_hits_total Reads served from the cache, by read model.\n")
	fmt.Fprintf(w, "# TYPE edutrack_cache_hits_total counter\n")
	for _, model := range slices.Sorted(maps.Keys(f.hits)) {
		fmt.Fprintf(w, "edutrack_cache_hits_total{read_model=%q} %s\n", model, strconv.FormatFloat(float64(f.hits[model]), 'g', -1, 64))
	}
	fmt.Fprintf(w, "# HELP edutrack_cache_misses_total Reads the cache could not serve, by read model.\n")
	fmt.Fprintf(w, "# TYPE edutrack_cache_misses_total counter\n")
	for _, model := range slices.Sorted(maps.Keys(f.misses)) {
		fmt.Fprintf(w, "edutrack_cache_misses_total{read_model=%q} %s\n", model, strconv.FormatFloat(float64(f.misses[model]), 'g', -1, 64))
	}
	fmt.Fprintf(w, "# TYPE edutrack_http_requests_in_flight gauge\nedutrack_http_requests_in_flight 1\n")
	f.liveMetrics(w, fakeServerName(r))
}

// cacheTotals is the fake's cache counters, summed over read models.
func (f *fakeServer) cacheTotals() (hits, misses int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.hits {
		hits += n
	}
	for _, n := range f.misses {
		misses += n
	}
	return hits, misses
}
