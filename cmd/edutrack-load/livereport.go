package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"
)

// parseLiveFlags checks -live-conns and reads -live-addrs (raw) into cfg, defaulting to -addr.
// It returns the problems found.
func parseLiveFlags(cfg *config, raw string) []string {
	var problems []string
	if cfg.liveConns < 1 {
		problems = append(problems, "-live-conns must be at least 1")
	}
	if strings.TrimSpace(raw) == "" {
		cfg.liveAddrs = []string{cfg.addr}
		return problems
	}
	for a := range strings.SplitSeq(raw, ",") {
		a = strings.TrimRight(strings.TrimSpace(a), "/")
		u, err := url.Parse(a)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("-live-addrs: %v", err))
		case u.Scheme != "http" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "":
			problems = append(problems, fmt.Sprintf("-live-addrs %q: want http://host:port", a))
		default:
			cfg.liveAddrs = append(cfg.liveAddrs, a)
		}
	}
	return problems
}

// runLivePhase waits until every read process has the read models up to known, runs the live
// phase and reports it.
func runLivePhase(ctx context.Context, stdout io.Writer, rep *report, writers []*writeClient, fx fixture, known uint64, cfg config) error {
	var targets []*api
	for _, a := range cfg.liveAddrs {
		t := newAPI(a, 2)
		defer t.close()
		t = t.asEach(cfg.tok.admin)
		targets = append(targets, t)
	}
	started := time.Now()
	for _, t := range targets {
		if err := settle(ctx, t, fx, known); err != nil {
			return fmt.Errorf("%s: %w", t.base, err)
		}
	}
	rep.settled(stdout, known, time.Since(started))
	res, err := runLive(ctx, writers, fx, targets, known, cfg)
	if err != nil {
		return err
	}
	rep.addLivePhase(stdout, res, fx.learnerCount())
	warnWrapped(stdout, rep, writers)
	return nil
}

// liveReport is the live phase's streams and deliveries; the phase's own latencies are the
// commands'.
type liveReport struct {
	Streams          int            `json:"streams"`
	Learners         int            `json:"learners"`
	Opened           map[string]int `json:"opened"` // by server
	OpenFailed       int64          `json:"openFailed"`
	OpenStatuses     map[int]int64  `json:"openErrorStatuses,omitempty"`
	FirstOpenError   string         `json:"firstOpenError,omitempty"`
	OpenSeconds      float64        `json:"openSeconds"`
	TargetRate       float64        `json:"targetRatePerSecond"`
	LateStarts       int64          `json:"lateStarts"`
	Expected         int64          `json:"expectedMessages"`
	Received         int64          `json:"messagesReceived"`
	Delivered        int64          `json:"delivered"`
	Superseded       int64          `json:"superseded"`
	Missed           int64          `json:"missed"`
	BeforeAnswer     int64          `json:"beforeAnswer"`
	Unwatched        int64          `json:"unwatchedCommands"`
	Resyncs          int64          `json:"resyncs"`
	Ended            int64          `json:"streamsEndedByServer"`
	FirstEnd         string         `json:"firstEnd,omitempty"`
	DeliveryMs       latencyMs      `json:"deliveryMs"`
	FirstMs          latencyMs      `json:"firstStreamMs"`
	LastMs           latencyMs      `json:"lastStreamMs"`
	FromSendMs       latencyMs      `json:"fromSendMs"`
	ClientCPUSeconds float64        `json:"clientCPUSeconds"`
	PacedSeconds     float64        `json:"pacedSeconds"`
	Servers          []liveServer   `json:"servers"`
	// Writer is the process the commands went to, where it serves no streams: its CPU alone.
	Writer *liveServer `json:"writer,omitempty"`
}

// liveServer is one read process, from its /metrics.
type liveServer struct {
	Addr              string   `json:"addr"`
	RSSBefore         float64  `json:"rssBytesBefore"`
	RSSOpened         float64  `json:"rssBytesOpened"`
	BytesPerStream    float64  `json:"bytesPerStream"`
	CPUCores          float64  `json:"cpuCoresWhilePaced"`
	Connections       float64  `json:"liveConnections"`
	Sent              float64  `json:"messagesSent"`
	Resyncs           float64  `json:"resyncs"`
	Dropped           float64  `json:"dropped"`
	DeliveryCount     float64  `json:"deliveries"`
	DeliveryP50Within *float64 `json:"deliveryP50WithinMs,omitempty"`
	DeliveryP99Within *float64 `json:"deliveryP99WithinMs,omitempty"`
	Error             string   `json:"error,omitempty"`
}

func (r *report) addLivePhase(w io.Writer, res *liveResult, learners int) {
	p := newPhaseReport(phaseLive, res.commands, res.elapsed)
	l := &liveReport{Streams: res.conns, Learners: learners, Opened: map[string]int{}, OpenFailed: res.refused.errors,
		OpenStatuses: res.refused.statuses, OpenSeconds: res.openTook.Seconds(), TargetRate: r.LagRate, LateStarts: res.late,
		Expected: res.expected, Received: res.received, Delivered: res.delivered, Superseded: res.superseded, Missed: res.missed, BeforeAnswer: res.early, Unwatched: res.unwatched,
		Resyncs: res.resyncs, Ended: res.ended, DeliveryMs: latencies(&result{latency: res.each}),
		FirstMs: latencies(&result{latency: res.first}), LastMs: latencies(&result{latency: res.last}),
		FromSendMs: latencies(&result{latency: res.fromSend}), ClientCPUSeconds: res.clientCPU.Seconds(), PacedSeconds: res.paced.Seconds()}
	if res.refused.first != nil {
		l.FirstOpenError = res.refused.first.Error()
	}
	if res.firstEnd != nil {
		l.FirstEnd = res.firstEnd.Error()
	}
	var quantiles [][2]float64
	for i, s := range res.servers {
		if !s.streams {
			l.Writer = &liveServer{Addr: s.addr, CPUCores: (s.ended.cpu - s.opened.cpu) / res.paced.Seconds()}
			if s.err != nil {
				l.Writer.Error = s.err.Error()
			}
			continue
		}
		l.Opened[s.addr] = res.opened[i]
		q50, q99 := 1000*deliveryQuantile(s.before, s.end, 0.5), 1000*deliveryQuantile(s.before, s.end, 0.99)
		quantiles = append(quantiles, [2]float64{q50, q99})
		ls := liveServer{Addr: s.addr, RSSBefore: s.before.rss, RSSOpened: s.opened.rss,
			CPUCores:    (s.ended.cpu - s.opened.cpu) / res.paced.Seconds(),
			Connections: s.ended.connections, Sent: s.end.sent - s.before.sent, Resyncs: s.end.resyncs - s.before.resyncs,
			Dropped: s.end.dropped - s.before.dropped, DeliveryCount: s.end.deliveryCount - s.before.deliveryCount,
			DeliveryP50Within: finite(q50), DeliveryP99Within: finite(q99)}
		if res.opened[i] > 0 {
			ls.BytesPerStream = (s.opened.rss - s.before.rss) / float64(res.opened[i])
		}
		if s.err != nil {
			ls.Error = s.err.Error()
		}
		l.Servers = append(l.Servers, ls)
	}
	p.Live = l
	r.Phases = append(r.Phases, p)

	var opened []string
	for _, s := range l.Servers {
		opened = append(opened, fmt.Sprintf("%s %d", s.Addr, l.Opened[s.Addr]))
	}
	fmt.Fprintf(w, "\n%s\n", r.title(phaseLive))
	fmt.Fprintf(w, "  streams   %d opened of %d (%s) in %s; %d failed", res.conns-int(l.OpenFailed), res.conns, strings.Join(opened, ", "),
		res.openTook.Round(time.Millisecond), l.OpenFailed)
	if l.OpenFailed > 0 {
		fmt.Fprintf(w, " (%s; first: %s)", errorParts(res.refused.transport, 0, l.OpenStatuses), l.FirstOpenError)
	}
	fmt.Fprintf(w, "\n            learner:<id> topics over %d learners, %.1f streams each\n", learners, float64(res.conns-int(l.OpenFailed))/float64(learners))
	fmt.Fprintf(w, "  commands  %d%s; errors %d%s\n", p.Requests, mix(p.Ops, phaseLag), p.Errors, errorDetail(p))
	fmt.Fprintf(w, "  rate      %.1f/s (successful commands, over %s; target %g/s); %d started late\n", p.Rate,
		res.elapsed.Round(time.Millisecond), l.TargetRate, l.LateStarts)
	fmt.Fprintf(w, "  command   %s\n", p.LatencyMs)
	fmt.Fprintf(w, "  received  %d messages in all, on every stream over the whole phase\n", l.Received)
	fmt.Fprintf(w, "  messages  %d changes delivered (each measured command's, to every stream of its learner), %d of them by a later "+
		"message that superseded the command's own; %d missed; %d came before the command's answer; %d resyncs; %d streams ended by the server",
		l.Delivered, l.Superseded, l.Missed, l.BeforeAnswer, l.Resyncs, l.Ended)
	if l.FirstEnd != "" {
		fmt.Fprintf(w, " (first: %s)", l.FirstEnd)
	}
	if l.Unwatched > 0 {
		fmt.Fprintf(w, "; %d commands were about a learner no stream follows", l.Unwatched)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  delivery  %s (command answered -> message read, each stream)\n", l.DeliveryMs)
	fmt.Fprintf(w, "  first     %s (to the first stream of the command's learner)\n", l.FirstMs)
	fmt.Fprintf(w, "  last      %s (to the last stream of the command's learner)\n", l.LastMs)
	fmt.Fprintf(w, "  from send %s (command sent -> message read, each stream)\n", l.FromSendMs)
	fmt.Fprintf(w, "  client    CPU %.2f s over %s of commands: %.2f cores\n", l.ClientCPUSeconds, res.paced.Round(time.Millisecond),
		l.ClientCPUSeconds/l.PacedSeconds)
	for i, s := range l.Servers {
		fmt.Fprintf(w, "  server    %s: RSS %.1f MiB before the streams, %.1f MiB with them open: %.0f bytes per stream; CPU %.2f cores while paced\n",
			s.Addr, s.RSSBefore/(1<<20), s.RSSOpened/(1<<20), s.BytesPerStream, s.CPUCores)
		fmt.Fprintf(w, "            /metrics: edutrack_live_connections %.0f, messages sent %+.0f, resyncs %+.0f, dropped %+.0f, "+
			"delivery (commit to socket) %.0f: p50 <= %s, p99 <= %s ms\n", s.Connections, s.Sent, s.Resyncs, s.Dropped,
			s.DeliveryCount, bound(quantiles[i][0]), bound(quantiles[i][1]))
		if s.Error != "" {
			fmt.Fprintf(w, "            (some metrics could not be read: %s)\n", s.Error)
		}
	}
	if l.Writer != nil {
		fmt.Fprintf(w, "  commands  %s: CPU %.2f cores while paced", l.Writer.Addr, l.Writer.CPUCores)
		if l.Writer.Error != "" {
			fmt.Fprintf(w, " (some metrics could not be read: %s)", l.Writer.Error)
		}
		fmt.Fprintln(w)
	}
}

// bound prints a histogram bucket's bound in ms.
func bound(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "n/a"
	case math.IsInf(ms, 1):
		return "+Inf"
	}
	return fmt.Sprintf("%.3g", ms)
}

// finite is v, or nil if it is NaN or infinite, which JSON cannot hold.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
