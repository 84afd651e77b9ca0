package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// lagResult is what the lag phase measured: commands sent at a fixed pace, each followed by a
// read of its learner's dashboard that waits until the read model shows the command.
type lagResult struct {
	elapsed    time.Duration
	commands   *result // command latency
	reads      *result // visibility latency: the dashboard GET with minPosition
	notVisible int64   // reads the server answered 503: not visible within its wait
	late       int64   // commands started after their slot, as the previous one was still running
}

func newLagResult() *lagResult {
	return &lagResult{commands: newResult(), reads: newResult()}
}

func (r *lagResult) merge(from *lagResult) {
	r.commands.merge(from.commands)
	r.reads.merge(from.reads)
	r.notVisible += from.notVisible
	r.late += from.late
}

// runLag paces the writers to rate commands per second in all, for warmup plus duration. Each
// writer sends a command, then GETs the dashboard of the command's learner with minPosition set
// to the position the command answered, and records how long that GET took: the time the read
// model needed to show the append, plus one round trip. It records the commands that start
// after the warmup, and fails only if ctx ends first.
func runLag(ctx context.Context, writers []*writeClient, rate float64, warmup, duration time.Duration) (*lagResult, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	interval := max(time.Duration(float64(len(writers))/rate*float64(time.Second)), time.Microsecond)

	perClient := make([]*lagResult, len(writers))
	var wg sync.WaitGroup
	for i, w := range writers {
		perClient[i] = newLagResult()
		// Staggered, so the commands arrive evenly rather than all clients at once.
		first := start.Add(interval * time.Duration(i) / time.Duration(len(writers)))
		wg.Go(func() {
			perClient[i].late = pace(ctx, first, interval, measureFrom, end, func(measured bool) { visit(ctx, w, perClient[i], measured) })
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	total := newLagResult()
	// The last slot may come well before the end; the rate is over the paced time.
	total.elapsed = max(time.Since(measureFrom), duration)
	for _, r := range perClient {
		total.merge(r)
	}
	return total, nil
}

// pace runs step once every interval from next on, telling it whether its slot is measured
// (after measureFrom). A step whose slot came while the previous one was still running starts at
// once and counts as late, and the schedule goes on from then: falling behind never turns into a
// burst. It returns how many measured steps started late.
func pace(ctx context.Context, next time.Time, interval time.Duration, measureFrom, end time.Time, step func(measured bool)) (lateStarts int64) {
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	late := false
	for next.Before(end) {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return lateStarts
		}
		started := time.Now()
		measured := !started.Before(measureFrom)
		if measured && late {
			lateStarts++
		}
		step(measured)

		next = next.Add(interval)
		now := time.Now()
		late = now.After(next)
		if late {
			next = now
		}
		timer.Reset(time.Until(next))
	}
	return lateStarts
}

// visit sends one command and reads it back, recording both if measured.
func visit(ctx context.Context, w *writeClient, r *lagResult, measured bool) {
	o, path, body, learner := w.command()
	started := time.Now()
	pos, err := w.as[learner].command(ctx, path, body)
	took := time.Since(started)
	measured = measured && ctx.Err() == nil
	if measured {
		r.commands.record(o, took, 0, err)
	}
	if err != nil {
		return
	}
	w.position = max(w.position, pos)

	started = time.Now()
	n, err := w.as[learner].read(ctx, w.dashboardPath[learner]+strconv.FormatUint(pos, 10))
	took = time.Since(started)
	if !measured || ctx.Err() != nil {
		return
	}
	r.reads.record(opDashboard, took, n, err)
	if se, ok := errors.AsType[*statusError](err); ok && se.code == http.StatusServiceUnavailable {
		r.notVisible++
	}
}
