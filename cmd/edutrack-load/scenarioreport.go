package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The store latencies the scenario reads from each server's /metrics: appends to the event log,
// and the projections' batch commits to the read store.
const (
	metricAppend     = "edutrack_eventstore_append_duration_seconds"
	metricBatchWrite = "edutrack_projection_batch_write_seconds"
)

// scenarioReport is the scenario phase's numbers. Offered counts the requests started in the
// measured time, answered those answered 2xx; the latencies are of the answered ones.
type scenarioReport struct {
	Users          int              `json:"users"`
	Instructors    int              `json:"instructors"`
	ThinkSeconds   float64          `json:"thinkSeconds"`
	ReadAddrs      []string         `json:"readAddrs,omitempty"`
	SetupSeconds   float64          `json:"setupSeconds"`
	SetupPosition  uint64           `json:"setupPosition"`
	TargetRate     float64          `json:"targetRatePerSecond"`
	OfferedRate    float64          `json:"offeredRatePerSecond"`
	AnsweredRate   float64          `json:"answeredRatePerSecond"`
	TooMany        int64            `json:"tooManyRequests"`
	LatencyMs      percentilesMs    `json:"latencyMs"`
	Routes         []routeReport    `json:"routes"`
	StreamsOpen    int64            `json:"streamsOpen"`
	StreamsEnded   int64            `json:"streamsEnded"`
	FirstStreamEnd string           `json:"firstStreamEnd,omitempty"`
	Messages       int64            `json:"liveMessages"`
	Cache          *cacheReport     `json:"cache,omitempty"`
	Servers        []scenarioServer `json:"servers"`
	ToolCPUCores   float64          `json:"toolCPUCores"` // this process, over the measured time
	Processes      []processReport  `json:"processes,omitempty"`
}

type percentilesMs struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

func percentiles(h *hdrhistogram.Histogram) percentilesMs {
	return percentilesMs{P50: ms(h.ValueAtQuantile(50)), P95: ms(h.ValueAtQuantile(95)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

func (p percentilesMs) String() string {
	return fmt.Sprintf("p50 %.2f  p95 %.2f  p99 %.2f  p99.9 %.2f  max %.1f ms", p.P50, p.P95, p.P99, p.P999, p.Max)
}

type routeReport struct {
	Route         string        `json:"route"`
	Requests      int64         `json:"requests"`
	Errors        int64         `json:"errors"`
	ErrorStatuses map[int]int64 `json:"errorStatuses,omitempty"`
	FirstError    string        `json:"firstError,omitempty"`
	Rate          float64       `json:"ratePerSecond"`
	LatencyMs     percentilesMs `json:"latencyMs"`
}

// scenarioServer is one EduTrack process over the measured time, from its /metrics.
type scenarioServer struct {
	Addr        string  `json:"addr"`
	CPUCores    float64 `json:"cpuCores"`
	PeakRSSMiB  float64 `json:"peakRSSMiB"` // the highest of the samples, one a second
	AppendP95Ms float64 `json:"appendP95Ms,omitempty"`
	BatchP95Ms  float64 `json:"batchWriteP95Ms,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// processReport is one process -server-pids named, from /proc over the measured time.
type processReport struct {
	PID        int     `json:"pid"`
	CPUCores   float64 `json:"cpuCores"`
	PeakRSSMiB float64 `json:"peakRSSMiB"` // VmHWM: the peak of the process's life
	Error      string  `json:"error,omitempty"`
}

// metricsSample is what the scenario reads from one /metrics.
type metricsSample struct {
	server serverSample
	cache  cacheCount
	hists  map[string]histogram
}

type histogram struct {
	buckets []bucket // cumulative, by bound, summed over every label set
	count   float64
}

func parseMetricsSample(text string) (metricsSample, error) {
	s, err := parseServerSample(text)
	if err != nil {
		return metricsSample{}, err
	}
	c, err := parseCacheCounters(text)
	if err != nil {
		return metricsSample{}, err
	}
	sums := map[string]map[float64]float64{}
	counts := map[string]float64{}
	err = eachSample(text, func(name, labels string, v float64) error {
		for _, h := range []string{metricAppend, metricBatchWrite} {
			switch name {
			case h + "_count":
				counts[h] += v
			case h + "_bucket":
				raw, _ := labelValue(labels, "le")
				le, err := strconv.ParseFloat(raw, 64)
				if err != nil {
					return err
				}
				if sums[h] == nil {
					sums[h] = map[float64]float64{}
				}
				sums[h][le] += v
			}
		}
		return nil
	})
	hists := map[string]histogram{}
	for name, byLE := range sums {
		h := histogram{count: counts[name]}
		for _, le := range slices.Sorted(maps.Keys(byLE)) {
			h.buckets = append(h.buckets, bucket{le: le, count: byLE[le]})
		}
		hists[name] = h
	}
	return metricsSample{server: s, cache: c, hists: hists}, err
}

// quantileMs is the upper bound of the bucket holding quantile q of what name counted between
// before and after, in milliseconds; 0 if nothing was counted.
func quantileMs(before, after metricsSample, name string, q float64) float64 {
	b, a := before.hists[name], after.hists[name]
	v := deliveryQuantile(serverSample{delivery: b.buckets, deliveryCount: b.count},
		serverSample{delivery: a.buckets, deliveryCount: a.count}, q)
	if math.IsNaN(v) {
		return 0
	}
	return v * 1000
}

// serverWatch samples the servers' /metrics once a second, for their peak RSS, and at both ends
// of the measured time; and /proc of the -server-pids.
type serverWatch struct {
	servers []*api
	pids    []int

	mu            sync.Mutex
	peak          []float64
	before, after []metricsSample
	errs          []error
	procBefore    []procSample
	procAfter     []procSample
	toolCPU       [2]time.Duration // this process's CPU time at both ends
}

type procSample struct {
	cpu   time.Duration
	hwm   float64 // bytes
	err   error
	taken time.Time
}

func newServerWatch(servers []*api, pids []int) *serverWatch {
	n := len(servers)
	return &serverWatch{servers: servers, pids: pids, peak: make([]float64, n), before: make([]metricsSample, n),
		after: make([]metricsSample, n), errs: make([]error, n), procBefore: make([]procSample, len(pids)), procAfter: make([]procSample, len(pids))}
}

func (w *serverWatch) scrape(ctx context.Context, into []metricsSample) {
	for i, s := range w.servers {
		body, err := s.fetch(ctx, "/metrics")
		var m metricsSample
		if err == nil {
			m, err = parseMetricsSample(string(body))
		}
		w.mu.Lock()
		if err != nil {
			if w.errs[i] == nil {
				w.errs[i] = err
			}
		} else {
			w.peak[i] = max(w.peak[i], m.server.rss)
			if into != nil {
				into[i] = m
			}
		}
		w.mu.Unlock()
	}
}

// run samples until end, taking the ends' samples at from and end.
func (w *serverWatch) run(ctx context.Context, from, end time.Time) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	first := time.NewTimer(time.Until(from))
	defer first.Stop()
	last := time.NewTimer(time.Until(end))
	defer last.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.scrape(ctx, nil)
		case <-first.C:
			w.toolCPU[0] = cpuTime()
			w.scrape(ctx, w.before)
			for i, pid := range w.pids {
				w.procBefore[i] = readProc(pid)
			}
		case <-last.C:
			w.toolCPU[1] = cpuTime()
			w.scrape(ctx, w.after)
			for i, pid := range w.pids {
				w.procAfter[i] = readProc(pid)
			}
			return
		}
	}
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTicks = 100

// readProc reads a process's CPU time and peak RSS from /proc.
func readProc(pid int) procSample {
	s := procSample{taken: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		s.err = err
		return s
	}
	// The command name, in parentheses, may hold spaces: the fields follow its closing one.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		s.err = fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
		return s
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		s.err = err
		return s
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			s.hwm = kb * 1024
		}
	}
	return s
}

// addScenarioPhase reports the scenario phase.
func (r *report) addScenarioPhase(w io.Writer, sc *scenario, watch *serverWatch, setupTook time.Duration, pos uint64) {
	cfg := sc.cfg
	secs := cfg.duration.Seconds()
	sr := &scenarioReport{Users: cfg.users, Instructors: cfg.instructors, ThinkSeconds: cfg.think.Seconds(), ReadAddrs: cfg.readAddrs,
		SetupSeconds: setupTook.Seconds(), SetupPosition: pos, TargetRate: float64(cfg.users) / cfg.think.Seconds(),
		StreamsOpen: sc.streamsOpen.Load(), StreamsEnded: sc.streamsEnded.Load(), Messages: sc.messages.Load()}
	if e := sc.firstStreamEnd.Load(); e != nil {
		sr.FirstStreamEnd = *e
	}
	total := newResult()
	for i := range sc.routes {
		res := sc.routes[i].res
		if res.requests == 0 {
			continue
		}
		rr := routeReport{Route: route(i).String(), Requests: res.requests, Errors: res.errors, ErrorStatuses: res.statuses,
			Rate: float64(res.requests-res.errors) / secs, LatencyMs: percentiles(res.latency)}
		if res.first != nil {
			rr.FirstError = res.first.Error()
		}
		sr.Routes = append(sr.Routes, rr)
		sr.TooMany += res.statuses[429]
		if route(i) != routeLive {
			total.merge(res)
		}
	}
	total.requests += sc.routes[routeLive].res.errors // a stream that failed to open is a failed request
	total.errors += sc.routes[routeLive].res.errors
	sr.OfferedRate = float64(total.requests) / secs
	sr.AnsweredRate = float64(total.requests-total.errors) / secs
	sr.LatencyMs = percentiles(total.latency)

	watch.mu.Lock()
	sr.ToolCPUCores = (watch.toolCPU[1] - watch.toolCPU[0]).Seconds() / secs
	var hits, misses float64
	cacheOK := true
	for i, s := range watch.servers {
		ss := scenarioServer{Addr: s.base, PeakRSSMiB: watch.peak[i] / (1 << 20)}
		b, a := watch.before[i], watch.after[i]
		if watch.errs[i] != nil {
			ss.Error = watch.errs[i].Error()
			cacheOK = false
		} else {
			ss.CPUCores = (a.server.cpu - b.server.cpu) / secs
			ss.AppendP95Ms = quantileMs(b, a, metricAppend, 0.95)
			ss.BatchP95Ms = quantileMs(b, a, metricBatchWrite, 0.95)
			hits += a.cache.hits - b.cache.hits
			misses += a.cache.misses - b.cache.misses
		}
		sr.Servers = append(sr.Servers, ss)
	}
	for i, pid := range watch.pids {
		b, a := watch.procBefore[i], watch.procAfter[i]
		pr := processReport{PID: pid, PeakRSSMiB: a.hwm / (1 << 20)}
		if err := cmp.Or(b.err, a.err); err != nil {
			pr.Error = err.Error()
		} else if took := a.taken.Sub(b.taken); took > 0 {
			pr.CPUCores = (a.cpu - b.cpu).Seconds() / took.Seconds()
		}
		sr.Processes = append(sr.Processes, pr)
	}
	watch.mu.Unlock()
	if cacheOK {
		cr := &cacheReport{Hits: int64(hits), Misses: int64(misses)}
		if hits+misses > 0 {
			rate := 100 * hits / (hits + misses)
			cr.HitRatePercent = &rate
		}
		sr.Cache = cr
	}

	p := phaseReport{Name: phaseScenario, Requests: total.requests, Ops: map[string]int64{}, Errors: total.errors,
		TransportErrors: total.transport, ErrorStatuses: total.statuses, Seconds: secs, Rate: sr.AnsweredRate,
		LatencyMs: latencies(total), Scenario: sr}
	if total.first != nil {
		p.FirstError = total.first.Error()
	}
	r.Phases = append(r.Phases, p)
	writeScenario(w, p, sr, cfg)
}

func writeScenario(w io.Writer, p phaseReport, sr *scenarioReport, cfg config) {
	where := "all on " + cfg.addr
	if len(sr.ReadAddrs) > 0 {
		where = "writes to " + cfg.addr + ", reads and streams over " + strings.Join(sr.ReadAddrs, ", ")
	}
	fmt.Fprintf(w, "\nscenario (%d users: %d instructors and %d learners, each its own token, connection and live stream; think %s ±50%%; %s)\n",
		sr.Users, sr.Instructors, sr.Users-sr.Instructors, cfg.think, where)
	fmt.Fprintf(w, "  offered   %.1f/s (%d requests started in %s; about %.0f/s expected from users/think)\n",
		sr.OfferedRate, p.Requests, cfg.duration, sr.TargetRate)
	fmt.Fprintf(w, "  answered  %.1f/s\n", sr.AnsweredRate)
	fmt.Fprintf(w, "  errors    %d%s\n", p.Errors, errorDetail(p))
	if sr.TooMany > 0 {
		fmt.Fprintf(w, "  429       %d requests met a rate limit: users at a human pace must never\n", sr.TooMany)
	}
	fmt.Fprintf(w, "  latency   %s\n", sr.LatencyMs)
	fmt.Fprintf(w, "  streams   %d open, %d ended by the server or broken, %d messages received\n", sr.StreamsOpen, sr.StreamsEnded, sr.Messages)
	if sr.FirstStreamEnd != "" {
		fmt.Fprintf(w, "            first end: %s\n", sr.FirstStreamEnd)
	}
	fmt.Fprintf(w, "  %-60s %9s %8s %8s %8s %8s %8s %7s\n", "route", "rate/s", "p50", "p95", "p99", "p99.9", "max ms", "errors")
	for _, rr := range sr.Routes {
		fmt.Fprintf(w, "  %-60s %9.1f %8.2f %8.2f %8.2f %8.2f %8.1f %7d\n", rr.Route, rr.Rate,
			rr.LatencyMs.P50, rr.LatencyMs.P95, rr.LatencyMs.P99, rr.LatencyMs.P999, rr.LatencyMs.Max, rr.Errors)
		if rr.Errors > 0 {
			fmt.Fprintf(w, "      %s; first: %s\n", errorParts(0, 0, rr.ErrorStatuses), rr.FirstError)
		}
	}
	if c := sr.Cache; c == nil {
		fmt.Fprintln(w, "  cache hit rate: n/a (a server's /metrics could not be read)")
	} else if c.HitRatePercent == nil {
		fmt.Fprintln(w, "  cache hit rate: n/a (no cache reads counted)")
	} else {
		fmt.Fprintf(w, "  cache hit rate: %.1f%% (hits %d, misses %d)\n", *c.HitRatePercent, c.Hits, c.Misses)
	}
	for _, s := range sr.Servers {
		if s.Error != "" {
			fmt.Fprintf(w, "  server %s: /metrics: %s\n", s.Addr, s.Error)
			continue
		}
		fmt.Fprintf(w, "  server %s: CPU %.2f cores, peak RSS %.0f MiB; store P95: event log append %.2f ms, read store batch commit %.2f ms\n",
			s.Addr, s.CPUCores, s.PeakRSSMiB, s.AppendP95Ms, s.BatchP95Ms)
	}
	for _, pr := range sr.Processes {
		if pr.Error != "" {
			fmt.Fprintf(w, "  process %d: %s\n", pr.PID, pr.Error)
			continue
		}
		fmt.Fprintf(w, "  process %d: CPU %.2f cores, peak RSS (VmHWM) %.0f MiB\n", pr.PID, pr.CPUCores, pr.PeakRSSMiB)
	}
	fmt.Fprintf(w, "  load tool: CPU %.2f cores (its users, on the same cores as the server)\n", sr.ToolCPUCores)
}
