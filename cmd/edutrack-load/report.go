package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is what a run measured. Its text form is written as the run goes, one block per phase;
// its JSON form, at the end, holds the same numbers.
type report struct {
	Addr              string        `json:"addr"`
	Prefix            string        `json:"prefix"`
	GOMAXPROCS        int           `json:"gomaxprocs"`
	NumCPU            int           `json:"numCPU"`
	Go                string        `json:"go"`
	Clients           int           `json:"clients"`
	WarmupSeconds     float64       `json:"warmupSeconds"`
	DurationSeconds   float64       `json:"durationSeconds"`
	Courses           int           `json:"courses"`
	Modules           int           `json:"modulesPerCourse"`
	LearnersPerClient int           `json:"learnersPerClient"`
	ReadMix           float64       `json:"readMix"`
	ZipfS             float64       `json:"zipfS"`
	LagRate           float64       `json:"lagRatePerSecond"`
	StaticURL         string        `json:"staticURL,omitempty"`
	SetupSeconds      float64       `json:"setupSeconds,omitempty"`
	SeedCommands      int           `json:"seedCommands,omitempty"`
	SetupPosition     uint64        `json:"setupPosition,omitempty"`
	SavedBody         *savedBody    `json:"savedBody,omitempty"`
	Phases            []phaseReport `json:"phases"`
	WriteHealthzRatio *float64      `json:"writeHealthzRatioPercent,omitempty"`
	ReadsStaticRatio  *float64      `json:"readsStaticRatioPercent,omitempty"`
	Warnings          []string      `json:"warnings,omitempty"`

	cfg config
}

// savedBody is the course detail -save-body wrote.
type savedBody struct {
	Path   string `json:"path"`
	Course string `json:"course"`
	Bytes  int    `json:"bytes"`
}

// phaseReport is one phase's numbers. The rate counts successful requests, and the latencies are
// those of successful requests. In the lag phase, they are the commands'; Lag holds the reads'.
type phaseReport struct {
	Name             string           `json:"name"`
	Requests         int64            `json:"requests"`
	Ops              map[string]int64 `json:"ops"`
	Errors           int64            `json:"errors"`
	TransportErrors  int64            `json:"transportErrors"`
	InvalidAnswers   int64            `json:"invalidAnswers,omitempty"`
	ErrorStatuses    map[int]int64    `json:"errorStatuses,omitempty"`
	FirstError       string           `json:"firstError,omitempty"`
	Seconds          float64          `json:"seconds"`
	Rate             float64          `json:"ratePerSecond"`
	LatencyMs        latencyMs        `json:"latencyMs"`
	BytesPerResponse float64          `json:"bytesPerResponse,omitempty"`
	Cache            *cacheReport     `json:"cache,omitempty"`
	Lag              *lagReport       `json:"lag,omitempty"`
	Live             *liveReport      `json:"live,omitempty"`
	Jobs             *jobsReport      `json:"jobs,omitempty"`
	Scenario         *scenarioReport  `json:"scenario,omitempty"`
}

// cacheReport is the read API's cache over the measured time of the reads phase, summed over
// read models.
type cacheReport struct {
	Hits           int64    `json:"hits"`
	Misses         int64    `json:"misses"`
	HitRatePercent *float64 `json:"hitRatePercent,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// lagReport is the lag phase's reads: the dashboard GETs with minPosition after each successful
// command. NotVisible counts the 503s among ReadErrors.
type lagReport struct {
	TargetRate          float64       `json:"targetRatePerSecond"`
	LateStarts          int64         `json:"lateStarts"`
	Reads               int64         `json:"reads"`
	ReadErrors          int64         `json:"readErrors"`
	NotVisible          int64         `json:"notVisibleWithinWait"`
	ReadTransportErrors int64         `json:"readTransportErrors"`
	ReadErrorStatuses   map[int]int64 `json:"readErrorStatuses,omitempty"`
	FirstReadError      string        `json:"firstReadError,omitempty"`
	VisibleMs           latencyMs     `json:"visibleMs"`
}

type latencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

func newReport(cfg config) *report {
	return &report{
		Addr:              cfg.addr,
		Prefix:            cfg.prefix,
		GOMAXPROCS:        runtime.GOMAXPROCS(0),
		NumCPU:            runtime.NumCPU(),
		Go:                runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Clients:           cfg.clients,
		WarmupSeconds:     cfg.warmup.Seconds(),
		DurationSeconds:   cfg.duration.Seconds(),
		Courses:           cfg.courses,
		Modules:           cfg.modules,
		LearnersPerClient: cfg.learners,
		ReadMix:           cfg.readMix,
		ZipfS:             cfg.zipfS,
		LagRate:           cfg.lagRate,
		StaticURL:         cfg.static,
		Phases:            []phaseReport{},
		cfg:               cfg,
	}
}

func (r *report) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "edutrack-load %s prefix=%s\n", r.Addr, r.Prefix)
	fmt.Fprintf(w, "machine: GOMAXPROCS=%d NumCPU=%d %s\n", r.GOMAXPROCS, r.NumCPU, r.Go)
	fmt.Fprintf(w, "load: clients=%d warmup=%s duration=%s phases=%s\n",
		r.Clients, r.cfg.warmup, r.cfg.duration, strings.Join(r.cfg.phases, ","))
}

func (r *report) setupDone(w io.Writer, fx fixture, pos uint64, took time.Duration) {
	r.SetupSeconds = took.Seconds()
	r.SeedCommands = fx.seedCommands()
	r.SetupPosition = pos
	fmt.Fprintf(w, "setup: 1 instructor, %d courses x %d modules, %d learners (%d per client) in %s\n",
		len(fx.courses), len(fx.modules), fx.learnerCount(), r.LearnersPerClient, took.Round(time.Millisecond))
	var done []string
	for _, s := range fx.seeds(0, 0) {
		done = append(done, fmt.Sprint(s.done))
	}
	fmt.Fprintf(w, "seed: each learner enrolled in %d courses with %s modules completed (%d commands); log at position %d\n",
		len(done), andList(done), r.SeedCommands, pos)

	if !slices.Contains(r.cfg.phases, phaseWrite) && !slices.Contains(r.cfg.phases, phaseLag) {
		return
	}
	perClient := capacity(fx)
	window := r.cfg.warmup + r.cfg.duration
	fmt.Fprintf(w, "write capacity: %d fresh commands per client (%d pairs x (1 + %d modules), less the seeds), "+
		"enough for %.0f commands/s over warmup+duration (%s)\n",
		perClient, len(fx.learners[0])*len(fx.courses), len(fx.modules),
		float64(perClient*r.Clients)/window.Seconds(), window)
}

// andList joins "a", "b", "c" as "a, b and c".
func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func (r *report) saved(w io.Writer, course, path string, bytes int) {
	r.SavedBody = &savedBody{Path: path, Course: course, Bytes: bytes}
	fmt.Fprintf(w, "saved: course detail %s (%d bytes, as GET /v1/courses/%s answered it) to %s\n", course, bytes, course, path)
}

func (r *report) settled(w io.Writer, pos uint64, took time.Duration) {
	fmt.Fprintf(w, "\nsettled: the read models reached log position %d in %s\n", pos, took.Round(time.Millisecond))
}

// newPhaseReport turns what a phase measured into its numbers.
func newPhaseReport(name string, res *result, elapsed time.Duration) phaseReport {
	p := phaseReport{
		Name:            name,
		Requests:        res.requests,
		Ops:             map[string]int64{},
		Errors:          res.errors,
		TransportErrors: res.transport,
		InvalidAnswers:  res.invalid,
		ErrorStatuses:   res.statuses,
		Seconds:         elapsed.Seconds(),
		Rate:            float64(res.requests-res.errors) / elapsed.Seconds(),
		LatencyMs:       latencies(res),
	}
	for o, n := range res.ops {
		if n > 0 {
			p.Ops[op(o).String()] = n
		}
	}
	if res.first != nil {
		p.FirstError = res.first.Error()
	}
	if ok := res.requests - res.errors; ok > 0 && res.bytes > 0 {
		p.BytesPerResponse = float64(res.bytes) / float64(ok)
	}
	return p
}

func latencies(res *result) latencyMs {
	return latencyMs{
		P50:  ms(res.latency.ValueAtQuantile(50)),
		P90:  ms(res.latency.ValueAtQuantile(90)),
		P99:  ms(res.latency.ValueAtQuantile(99)),
		P999: ms(res.latency.ValueAtQuantile(99.9)),
		Max:  ms(res.latency.Max()),
	}
}

func (r *report) addPhase(w io.Writer, name string, res *result) {
	p := newPhaseReport(name, res, res.elapsed)
	r.Phases = append(r.Phases, p)

	fmt.Fprintf(w, "\n%s\n", r.title(name))
	fmt.Fprintf(w, "  requests  %d%s\n", p.Requests, mix(p.Ops, name))
	fmt.Fprintf(w, "  errors    %d%s\n", p.Errors, errorDetail(p))
	fmt.Fprintf(w, "  rate      %.1f/s (successful, over %s)\n", p.Rate, res.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  latency   %s\n", p.LatencyMs)
	if name == phaseReads || name == phaseStatic {
		fmt.Fprintf(w, "  bytes     %.0f per response (average)\n", p.BytesPerResponse)
	}
}

func (r *report) title(name string) string {
	switch name {
	case phaseHealthz:
		return "healthz (GET /healthz)"
	case phaseWrite:
		return "write (EnrollStudent + CompleteModule)"
	case phaseReads:
		return fmt.Sprintf("reads (GET course detail %.0f%% + dashboard %.0f%%, ids Zipf s=%g over %d courses and %d learners)",
			100*r.ReadMix, 100*(1-r.ReadMix), r.ZipfS, r.Courses, r.Clients*r.LearnersPerClient)
	case phaseStatic:
		return "static (GET " + r.StaticURL + ")"
	case phaseLag:
		return fmt.Sprintf("lag (EnrollStudent + CompleteModule paced at %g/s, each followed by GET its learner's dashboard?minPosition=<its position>)",
			r.LagRate)
	case phaseLive:
		return fmt.Sprintf("live (%d streams of GET /v1/live; EnrollStudent + CompleteModule paced at %g/s, each timed to its message on the streams of its learner)",
			r.cfg.liveConns, r.LagRate)
	case phaseJobs:
		return fmt.Sprintf("jobs (%d enrollments, each an email; %d course completions at once, each a certificate; then %d one at a time)",
			r.cfg.jobsEmails, r.cfg.jobsCertificates, r.cfg.jobsIdle)
	}
	return name
}

func (l latencyMs) String() string {
	return fmt.Sprintf("p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms", l.P50, l.P90, l.P99, l.P999, l.Max)
}

// addCache adds the cache hit rate to the reads phase, the last one added.
func (r *report) addCache(w io.Writer, c cacheWindow) {
	p := &r.Phases[len(r.Phases)-1]
	if c.err != nil {
		p.Cache = &cacheReport{Error: c.err.Error()}
		fmt.Fprintf(w, "  cache hit rate: n/a (read /metrics: %v)\n", c.err)
		return
	}
	// The counters are floats in the exposition format, exact far beyond any run's count.
	cr := &cacheReport{Hits: int64(c.after.hits - c.before.hits), Misses: int64(c.after.misses - c.before.misses)}
	p.Cache = cr
	if cr.Hits < 0 || cr.Misses < 0 {
		cr.Error = "the counters went down: did the server restart?"
		fmt.Fprintf(w, "  cache hit rate: n/a (%s)\n", cr.Error)
		return
	}
	if cr.Hits+cr.Misses == 0 {
		fmt.Fprintf(w, "  cache hit rate: n/a (hits 0, misses 0: the server counted no cache reads)\n")
		return
	}
	rate := 100 * float64(cr.Hits) / float64(cr.Hits+cr.Misses)
	cr.HitRatePercent = &rate
	fmt.Fprintf(w, "  cache hit rate: %.1f%% (hits %d, misses %d)\n", rate, cr.Hits, cr.Misses)
}

func (r *report) addLagPhase(w io.Writer, res *lagResult) {
	p := newPhaseReport(phaseLag, res.commands, res.elapsed)
	l := &lagReport{
		TargetRate:          r.LagRate,
		LateStarts:          res.late,
		Reads:               res.reads.requests,
		ReadErrors:          res.reads.errors,
		NotVisible:          res.notVisible,
		ReadTransportErrors: res.reads.transport,
		ReadErrorStatuses:   res.reads.statuses,
		VisibleMs:           latencies(res.reads),
	}
	if res.reads.first != nil {
		l.FirstReadError = res.reads.first.Error()
	}
	p.Lag = l
	r.Phases = append(r.Phases, p)

	fmt.Fprintf(w, "\n%s\n", r.title(phaseLag))
	fmt.Fprintf(w, "  commands  %d%s\n", p.Requests, mix(p.Ops, phaseLag))
	fmt.Fprintf(w, "  errors    %d", p.Errors+l.ReadErrors)
	if p.Errors+l.ReadErrors > 0 {
		fmt.Fprintf(w, "  (commands %d, reads %d, of which not visible within the wait %d)", p.Errors, l.ReadErrors, l.NotVisible)
		if p.Errors > 0 {
			fmt.Fprintf(w, "\n            commands: %s; first: %s", errorParts(p.TransportErrors, p.InvalidAnswers, p.ErrorStatuses), p.FirstError)
		}
		if l.ReadErrors > 0 {
			fmt.Fprintf(w, "\n            reads: %s; first: %s", errorParts(l.ReadTransportErrors, 0, l.ReadErrorStatuses), l.FirstReadError)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  rate      %.1f/s (successful commands, over %s; target %g/s)\n", p.Rate, res.elapsed.Round(time.Millisecond), l.TargetRate)
	fmt.Fprintf(w, "  late      %d of %d commands started after their slot, the client still busy with the previous one (no catch-up burst)\n",
		l.LateStarts, p.Requests)
	fmt.Fprintf(w, "  command   %s\n", p.LatencyMs)
	fmt.Fprintf(w, "  visible   %s (GET with minPosition: append to visible, plus one round trip)\n", l.VisibleMs)
}

func ms(micros int64) float64 { return float64(micros) / 1000 }

// mix lists the count of each kind of request, where a phase sends more than one kind.
func mix(ops map[string]int64, name string) string {
	switch name {
	case phaseWrite, phaseLag:
		return fmt.Sprintf("  (%s %d, %s %d)", opEnroll, ops[opEnroll.String()], opComplete, ops[opComplete.String()])
	case phaseReads:
		return fmt.Sprintf("  (%s %d, %s %d)", opCourseDetail, ops[opCourseDetail.String()], opDashboard, ops[opDashboard.String()])
	}
	return ""
}

func errorDetail(p phaseReport) string {
	if p.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("  (%s)\n            first: %s", errorParts(p.TransportErrors, p.InvalidAnswers, p.ErrorStatuses), p.FirstError)
}

func errorParts(transport, invalid int64, statuses map[int]int64) string {
	var parts []string
	if transport > 0 {
		parts = append(parts, fmt.Sprintf("transport %d", transport))
	}
	if invalid > 0 {
		parts = append(parts, fmt.Sprintf("no position in the answer %d", invalid))
	}
	for _, code := range slices.Sorted(maps.Keys(statuses)) {
		parts = append(parts, fmt.Sprintf("HTTP %d: %d", code, statuses[code]))
	}
	return strings.Join(parts, ", ")
}

func (r *report) warn(w io.Writer, msg string) {
	r.Warnings = append(r.Warnings, msg)
	fmt.Fprintf(w, "  warning: %s\n", msg)
}

func (r *report) phase(name string) (phaseReport, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return phaseReport{}, false
}

func (r *report) writeFooter(w io.Writer) {
	r.WriteHealthzRatio = r.ratio(w, phaseWrite, phaseHealthz)
	r.ReadsStaticRatio = r.ratio(w, phaseReads, phaseStatic)
}

// ratio prints and returns the rate of phase over that of baseline, if both ran.
func (r *report) ratio(w io.Writer, phase, baseline string) *float64 {
	p, okP := r.phase(phase)
	b, okB := r.phase(baseline)
	if !okP || !okB {
		return nil
	}
	if b.Rate == 0 {
		fmt.Fprintf(w, "\n%s/%s ratio: n/a (no successful %s request)\n", phase, baseline, baseline)
		return nil
	}
	ratio := 100 * p.Rate / b.Rate
	fmt.Fprintf(w, "\n%s/%s ratio: %.1f%%\n", phase, baseline, ratio)
	return &ratio
}

// failures says which requests of the write, reads and lag phases failed, if any did.
func (r *report) failures() error {
	var errs []error
	if p, ok := r.phase(phaseWrite); ok && p.Errors > 0 {
		errs = append(errs, fmt.Errorf("write phase: %d of %d commands failed", p.Errors, p.Requests))
	}
	if p, ok := r.phase(phaseReads); ok && p.Errors > 0 {
		errs = append(errs, fmt.Errorf("reads phase: %d of %d reads failed", p.Errors, p.Requests))
	}
	if p, ok := r.phase(phaseLag); ok && (p.Errors > 0 || p.Lag.ReadErrors > 0) {
		errs = append(errs, fmt.Errorf("lag phase: %d of %d commands and %d of %d reads failed, %d of them not visible within the wait",
			p.Errors, p.Requests, p.Lag.ReadErrors, p.Lag.Reads, p.Lag.NotVisible))
	}
	if p, ok := r.phase(phaseLive); ok && (p.Errors > 0 || p.Live.OpenFailed > 0) {
		errs = append(errs, fmt.Errorf("live phase: %d of %d commands failed, %d of %d streams could not be opened",
			p.Errors, p.Requests, p.Live.OpenFailed, p.Live.Streams))
	}
	if p, ok := r.phase(phaseScenario); ok && p.Errors > 0 {
		errs = append(errs, fmt.Errorf("scenario phase: %d of %d requests failed, %d of them with 429", p.Errors, p.Requests, p.Scenario.TooMany))
	}
	if p, ok := r.phase(phaseJobs); ok {
		errs = append(errs, jobsFailures(p.Jobs))
	}
	return errors.Join(errs...)
}

func (r *report) writeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%s\n", b)
	return err
}
