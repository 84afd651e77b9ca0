package main

import (
	"context"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/edutrack/edutrack/domain"
)

// liveOpeners bounds how many streams are being opened at once, so that the opening does not
// overflow the server's accept queue; what is measured is the streams once open.
const liveOpeners = 64

// liveSettle is how long the phase waits after the streams are open before it reads the
// servers' memory, so that what the openings allocated and freed has been collected.
const liveSettle = 2 * time.Second

// liveGrace bounds how long the phase waits, once the last command was answered, for the
// messages still on their way.
const liveGrace = 5 * time.Second

// liveCommand is one command the live phase sent: about which learner, the position of the
// learner's previous command (or where the log stood when the streams opened), its own position,
// and when it was sent and answered, since the phase began.
type liveCommand struct {
	learner     int
	prev, pos   uint64
	sent, acked time.Duration
	measured    bool
}

// liveResult is what the live phase measured.
type liveResult struct {
	elapsed  time.Duration
	conns    int
	opened   []int // per server, the streams opened there
	openTook time.Duration
	refused  *result // the openings that failed, as requests
	commands *result
	late     int64

	expected, delivered, superseded, missed, early int64
	received                                       int64 // messages with an id, on every stream, over the whole phase
	unwatched                                      int64 // measured commands about a learner no stream follows
	resyncs                                        int64
	ended                                          int64 // streams the server ended, or that broke, before the phase closed them
	firstEnd                                       error
	// each is the time from a command's answer to a message's arrival, for every stream of
	// its learner; first and last, per command, to its first and its last stream; fromSend, to
	// every stream but from when the command was sent.
	each, first, last, fromSend *hdrhistogram.Histogram

	clientCPU time.Duration // user and system time of this process while the commands ran
	paced     time.Duration
	servers   []serverWindow
}

// serverWindow is one server's metrics at the phase's steps: before the streams open, once
// they are open (when the commands start), when the commands end, and after the grace.
type serverWindow struct {
	addr                       string
	streams                    bool // false for the process that takes the commands and serves no streams
	before, opened, ended, end serverSample
	err                        error // why some of them could not be read
}

// runLive opens cfg.liveConns streams over targets, each following one learner of fx (in turn,
// so every learner gets as many streams as the next, give or take one), then paces the writers as
// runLag does and times, for every command, its message's arrival on each stream of its learner.
// known is the log position the read models have reached: what came before, no stream is sent.
func runLive(ctx context.Context, writers []*writeClient, fx fixture, targets []*api, known uint64, cfg config) (*liveResult, error) {
	start := time.Now()
	res := &liveResult{conns: cfg.liveConns, opened: make([]int, len(targets)), refused: newResult(), commands: newResult(),
		each: newHistogram(), first: newHistogram(), last: newHistogram(), fromSend: newHistogram()}
	watched := targets
	for _, t := range targets {
		res.servers = append(res.servers, serverWindow{addr: t.base, streams: true})
	}
	// The process the commands go to, if it serves no streams, for its CPU.
	if len(writers) > 0 && !slices.ContainsFunc(targets, func(t *api) bool { return t.base == writers[0].api.base }) {
		watched = append(slices.Clip(watched), writers[0].api)
		res.servers = append(res.servers, serverWindow{addr: writers[0].api.base})
	}
	scrape := func(at func(w *serverWindow) *serverSample) {
		for i, t := range watched {
			s, err := scrapeServer(ctx, t)
			*at(&res.servers[i]) = s
			if err != nil && res.servers[i].err == nil {
				res.servers[i].err = err
			}
		}
	}
	scrape(func(w *serverWindow) *serverSample { return &w.before })

	learners := fx.allLearners()
	var auths []string // per learner, its Authorization header
	for _, l := range learners {
		auths = append(auths, cfg.tok.bearer(l, domain.Learner))
	}
	streams, subscribers, received := openStreams(ctx, res, targets, learners, auths, start)
	var closing atomic.Bool
	var readers sync.WaitGroup
	for _, s := range streams {
		if s != nil {
			readers.Go(func() { s.read(start, closing.Load) })
		}
	}
	// Once the counts are in, or the phase fails; the readers then end.
	closeAll := sync.OnceFunc(func() {
		closing.Store(true)
		for _, s := range streams {
			if s != nil {
				s.close()
			}
		}
		readers.Wait()
	})
	defer closeAll()
	if err := sleep(ctx, liveSettle); err != nil {
		return nil, err
	}
	scrape(func(w *serverWindow) *serverSample { return &w.opened })

	cmds, err := paceLive(ctx, res, writers, known, start, cfg)
	if err != nil {
		return nil, err
	}
	scrape(func(w *serverWindow) *serverSample { return &w.ended })

	for _, c := range cmds {
		res.expected += int64(len(subscribers[c.learner]))
	}
	graceEnd := time.Now().Add(liveGrace)
	for received.Load() < res.expected && time.Now().Before(graceEnd) {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	scrape(func(w *serverWindow) *serverSample { return &w.end })
	closeAll()
	res.received = received.Load()

	arrivals := make([][][]arrival, len(learners))
	for l, subs := range subscribers {
		for _, s := range subs {
			arrivals[l] = append(arrivals[l], s.arrivals)
			res.resyncs += s.resyncs
			if s.err != nil {
				res.ended++
				if res.firstEnd == nil {
					res.firstEnd = s.err
				}
			}
		}
	}
	res.match(cmds, arrivals)
	return res, nil
}

// openStreams opens res.conns streams, the i-th following learners[i%len] on the target
// streamTarget names, liveOpeners at a time. It returns them (nil where the opening failed, counted in res.refused),
// those of each learner, and the counter of messages they receive.
func openStreams(ctx context.Context, res *liveResult, targets []*api, learners, auths []string, start time.Time) ([]*stream, [][]*stream, *atomic.Int64) {
	streams := make([]*stream, res.conns)
	errs := make([]error, res.conns)
	sem := make(chan struct{}, liveOpeners)
	var wg sync.WaitGroup
	for i := range streams {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			streams[i], errs[i] = openStream(ctx, targets[streamTarget(i, len(learners), len(targets))].base, "learner:"+learners[i%len(learners)], auths[i%len(learners)])
		})
	}
	wg.Wait()
	res.openTook = time.Since(start)

	received := new(atomic.Int64)
	subscribers := make([][]*stream, len(learners))
	for i, s := range streams {
		res.refused.record(opLive, 0, 0, errs[i])
		if s == nil {
			continue
		}
		s.received = received
		res.opened[streamTarget(i, len(learners), len(targets))]++
		subscribers[i%len(learners)] = append(subscribers[i%len(learners)], s)
	}
	return streams, subscribers, received
}

// streamTarget is the target of the i-th of the streams over learners learners: in turn, and
// shifted by one at each round of the learners, so that a learner's streams are spread over the
// targets too (with an even number of learners, plain turns would put all of a learner's
// streams on one target, and each would hand out the changes of its own half alone).
func streamTarget(i, learners, targets int) int { return (i + i/learners) % targets }

// paceLive paces the writers to cfg.lagRate commands per second in all, as runLag does, and
// returns every command sent, in no particular order.
func paceLive(ctx context.Context, res *liveResult, writers []*writeClient, known uint64, start time.Time, cfg config) ([]liveCommand, error) {
	begun := time.Now()
	measureFrom := begun.Add(cfg.warmup)
	end := measureFrom.Add(cfg.duration)
	interval := max(time.Duration(float64(len(writers))/cfg.lagRate*float64(time.Second)), time.Microsecond)
	perWriter := make([][]liveCommand, len(writers))
	perResult := make([]*result, len(writers))
	lates := make([]int64, len(writers))
	cpuBefore := cpuTime()
	var wg sync.WaitGroup
	for i, w := range writers {
		perResult[i] = newResult()
		// The position each learner's previous command answered: its message comes after it.
		prev := make([]uint64, len(w.learners))
		for j := range prev {
			prev[j] = known
		}
		first := begun.Add(interval * time.Duration(i) / time.Duration(len(writers)))
		wg.Go(func() {
			lates[i] = pace(ctx, first, interval, measureFrom, end, func(measured bool) {
				o, path, body, learner := w.command()
				sent := time.Since(start)
				pos, err := w.as[learner].command(ctx, path, body)
				acked := time.Since(start)
				measured = measured && ctx.Err() == nil
				if measured {
					perResult[i].record(o, acked-sent, 0, err)
				}
				if err != nil {
					return
				}
				w.position = max(w.position, pos)
				perWriter[i] = append(perWriter[i], liveCommand{learner: i*len(w.learners) + learner, prev: prev[learner], pos: pos,
					sent: sent, acked: acked, measured: measured})
				prev[learner] = pos
			})
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.paced = time.Since(begun)
	res.clientCPU = cpuTime() - cpuBefore
	res.elapsed = max(time.Since(measureFrom), cfg.duration)
	var cmds []liveCommand
	for i := range writers {
		res.commands.merge(perResult[i])
		res.late += lates[i]
		cmds = append(cmds, perWriter[i]...)
	}
	return cmds, nil
}

// match times each measured command's change on every stream of its learner: the first
// message there with an id past the learner's previous command. Each learner's commands come
// from one writer, one at a time, so that is the command's own message, unless its id is past
// the command's position too: then the command's message never came (the hub sends a document
// once, and a later change of it, read before the earlier change was handed out, takes the
// earlier's place), and that later message, whose document was read after it and so shows the
// command's change, is when the change reached the client: superseded, and timed to it. A stream
// with no such message missed the change, or got it early, in the message of the learner's
// previous change whose document was read after this one, which the ids cannot show: the
// documents are not read. arrivals holds, per learner, each of its streams'
// arrivals in the order received.
func (res *liveResult) match(cmds []liveCommand, arrivals [][][]arrival) {
	for _, c := range cmds {
		if !c.measured {
			continue
		}
		if len(arrivals[c.learner]) == 0 {
			res.unwatched++
			continue
		}
		first, last := time.Duration(-1), time.Duration(-1)
		for _, a := range arrivals[c.learner] {
			i := sort.Search(len(a), func(i int) bool { return a[i].id > c.prev })
			if i == len(a) {
				res.missed++
				continue
			}
			res.delivered++
			if a[i].id > c.pos {
				res.superseded++
			}
			took := a[i].at - c.acked
			if took < 0 {
				// The message came before the command's answer: delivered as it was appended.
				res.early++
				took = 0
			}
			record(res.each, took)
			record(res.fromSend, a[i].at-c.sent)
			if first < 0 || took < first {
				first = took
			}
			last = max(last, took)
		}
		if first >= 0 {
			record(res.first, first)
			record(res.last, last)
		}
	}
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(d.Microseconds(), 1), maxLatency))
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
