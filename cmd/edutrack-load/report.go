package main

import (
	"encoding/json"
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
	SetupSeconds      float64       `json:"setupSeconds,omitempty"`
	Phases            []phaseReport `json:"phases"`
	WriteHealthzRatio *float64      `json:"writeHealthzRatioPercent,omitempty"`
	Warnings          []string      `json:"warnings,omitempty"`

	cfg config
}

// phaseReport is one phase's numbers. The rate counts successful requests, and the latencies are
// those of successful requests.
type phaseReport struct {
	Name            string           `json:"name"`
	Requests        int64            `json:"requests"`
	Ops             map[string]int64 `json:"ops"`
	Errors          int64            `json:"errors"`
	TransportErrors int64            `json:"transportErrors"`
	ErrorStatuses   map[int]int64    `json:"errorStatuses,omitempty"`
	FirstError      string           `json:"firstError,omitempty"`
	Seconds         float64          `json:"seconds"`
	Rate            float64          `json:"ratePerSecond"`
	LatencyMs       latencyMs        `json:"latencyMs"`
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

func (r *report) setupDone(w io.Writer, fx fixture, took time.Duration) {
	r.SetupSeconds = took.Seconds()
	fmt.Fprintf(w, "setup: 1 instructor, %d courses x %d modules, %d learners (%d per client) in %s\n",
		len(fx.courses), len(fx.modules), fx.learnerCount(), r.LearnersPerClient, took.Round(time.Millisecond))

	perClient := capacity(fx)
	window := r.cfg.warmup + r.cfg.duration
	fmt.Fprintf(w, "write capacity: %d fresh commands per client (%d pairs x (1 + %d modules)), "+
		"enough for %.0f commands/s over warmup+duration (%s)\n",
		perClient, len(fx.learners[0])*len(fx.courses), len(fx.modules),
		float64(perClient*r.Clients)/window.Seconds(), window)
}

func (r *report) addPhase(w io.Writer, name string, res *result) {
	p := phaseReport{
		Name:            name,
		Requests:        res.requests,
		Ops:             map[string]int64{},
		Errors:          res.errors,
		TransportErrors: res.transport,
		ErrorStatuses:   res.statuses,
		Seconds:         res.elapsed.Seconds(),
		Rate:            float64(res.requests-res.errors) / res.elapsed.Seconds(),
		LatencyMs: latencyMs{
			P50:  ms(res.latency.ValueAtQuantile(50)),
			P90:  ms(res.latency.ValueAtQuantile(90)),
			P99:  ms(res.latency.ValueAtQuantile(99)),
			P999: ms(res.latency.ValueAtQuantile(99.9)),
			Max:  ms(res.latency.Max()),
		},
	}
	for o, n := range res.ops {
		if n > 0 {
			p.Ops[op(o).String()] = n
		}
	}
	if res.first != nil {
		p.FirstError = res.first.Error()
	}
	r.Phases = append(r.Phases, p)

	title := map[string]string{
		phaseHealthz: "healthz (GET /healthz)",
		phaseWrite:   "write (EnrollStudent + CompleteModule)",
	}[name]
	fmt.Fprintf(w, "\n%s\n", title)
	fmt.Fprintf(w, "  requests  %d%s\n", p.Requests, mix(p.Ops, name))
	fmt.Fprintf(w, "  errors    %d%s\n", p.Errors, errorDetail(p))
	fmt.Fprintf(w, "  rate      %.1f/s (successful, over %s)\n", p.Rate, res.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  latency   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n",
		p.LatencyMs.P50, p.LatencyMs.P90, p.LatencyMs.P99, p.LatencyMs.P999, p.LatencyMs.Max)
}

func ms(micros int64) float64 { return float64(micros) / 1000 }

// mix lists the count of each kind of request, where a phase sends more than one kind.
func mix(ops map[string]int64, name string) string {
	if name != phaseWrite {
		return ""
	}
	return fmt.Sprintf("  (%s %d, %s %d)", opEnroll, ops[opEnroll.String()], opComplete, ops[opComplete.String()])
}

func errorDetail(p phaseReport) string {
	if p.Errors == 0 {
		return ""
	}
	var parts []string
	if p.TransportErrors > 0 {
		parts = append(parts, fmt.Sprintf("transport %d", p.TransportErrors))
	}
	for _, code := range slices.Sorted(maps.Keys(p.ErrorStatuses)) {
		parts = append(parts, fmt.Sprintf("HTTP %d: %d", code, p.ErrorStatuses[code]))
	}
	return fmt.Sprintf("  (%s)\n            first: %s", strings.Join(parts, ", "), p.FirstError)
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
	write, okW := r.phase(phaseWrite)
	health, okH := r.phase(phaseHealthz)
	if !okW || !okH {
		return
	}
	if health.Rate == 0 {
		fmt.Fprintln(w, "\nwrite/healthz ratio: n/a (no successful healthz request)")
		return
	}
	ratio := 100 * write.Rate / health.Rate
	r.WriteHealthzRatio = &ratio
	fmt.Fprintf(w, "\nwrite/healthz ratio: %.1f%%\n", ratio)
}

func (r *report) writeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%s\n", b)
	return err
}
