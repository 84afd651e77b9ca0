package main

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
)

// serverSample is what a server's /metrics says of its process and its live streams at one
// moment.
type serverSample struct {
	rss, cpu float64 // bytes resident; CPU seconds since it started
	// connections is the live streams open; sent, resyncs and dropped count messages written
	// (resyncs among them), streams told to resync, and messages not given to a stream.
	connections, sent, resyncs, dropped float64
	// delivery is the histogram of the time from a projection's commit to the write to a
	// socket: its buckets, cumulative, in the order of their bounds, and its count.
	delivery      []bucket
	deliveryCount float64
}

type bucket struct{ le, count float64 }

// The metrics serverSample reads.
const (
	metricRSS         = "process_resident_memory_bytes"
	metricCPU         = "process_cpu_seconds_total"
	metricConnections = "edutrack_live_connections"
	metricSent        = "edutrack_live_messages_sent_total"
	metricResyncs     = "edutrack_live_resyncs_total"
	metricDropped     = "edutrack_live_dropped_total"
	metricDelivery    = "edutrack_live_delivery_seconds"
)

func scrapeServer(ctx context.Context, api *api) (serverSample, error) {
	body, err := api.fetch(ctx, "/metrics")
	if err != nil {
		return serverSample{}, err
	}
	return parseServerSample(string(body))
}

// parseServerSample reads a serverSample from a Prometheus text exposition; a metric that is
// absent counts as 0.
func parseServerSample(text string) (serverSample, error) {
	var s serverSample
	err := eachSample(text, func(name, labels string, v float64) error {
		switch name {
		case metricRSS:
			s.rss = v
		case metricCPU:
			s.cpu = v
		case metricConnections:
			s.connections += v
		case metricSent:
			s.sent += v
		case metricResyncs:
			s.resyncs += v
		case metricDropped:
			s.dropped += v
		case metricDelivery + "_count":
			s.deliveryCount += v
		case metricDelivery + "_bucket":
			raw, _ := labelValue(labels, "le")
			le, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return err
			}
			s.delivery = append(s.delivery, bucket{le: le, count: v})
		}
		return nil
	})
	slices.SortFunc(s.delivery, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	return s, err
}

// deliveryQuantile is the upper bound of the bucket that holds quantile q (0 to 1) of the
// deliveries counted between before and after, in seconds: +Inf past the last bound, NaN if
// none were counted or the buckets differ.
func deliveryQuantile(before, after serverSample, q float64) float64 {
	total := after.deliveryCount - before.deliveryCount
	if total <= 0 || (len(before.delivery) > 0 && len(before.delivery) != len(after.delivery)) {
		return math.NaN()
	}
	for i, b := range after.delivery {
		n := b.count
		if len(before.delivery) > 0 {
			n -= before.delivery[i].count
		}
		if n >= q*total {
			return b.le
		}
	}
	return math.Inf(1)
}
