package main

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// eachSample calls each for every sample of a Prometheus text exposition: its metric name, its
// labels as written between the braces ("" without), and its value. It stops at each's first
// error.
func eachSample(text string, each func(name, labels string, value float64) error) error {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		labels := ""
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			// Label values may hold spaces; the value follows the closing brace.
			name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return fmt.Errorf("metrics line %q: no closing brace", line)
			}
			labels, rest = line[i+1:j], line[j+1:]
		}
		// A timestamp may follow the value.
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) {
			return fmt.Errorf("metrics line %q: value %q", line, fields[0])
		}
		if err := each(name, labels, v); err != nil {
			return err
		}
	}
	return sc.Err()
}

// labelValue is the value of label name in labels as eachSample gives them.
func labelValue(labels, name string) (string, bool) {
	for labels != "" {
		var pair string
		// Values are quoted and may hold commas: cut at the closing quote.
		k, rest, ok := strings.Cut(labels, `="`)
		if !ok {
			return "", false
		}
		end := strings.IndexByte(rest, '"')
		for end > 0 && rest[end-1] == '\\' {
			next := strings.IndexByte(rest[end+1:], '"')
			if next < 0 {
				return "", false
			}
			end += 1 + next
		}
		if end < 0 {
			return "", false
		}
		pair, labels = rest[:end], strings.TrimPrefix(rest[end+1:], ",")
		if strings.TrimSpace(k) == name {
			return pair, true
		}
	}
	return "", false
}
