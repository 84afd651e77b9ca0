// Command edutrack-load measures the EduTrack write API: an EnrollStudent + CompleteModule mix
// from concurrent clients, compared with how fast the same server answers GET /healthz under the
// same concurrency in the same run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "edutrack-load:", err)
		os.Exit(1)
	}
}

// Phase names, as -phases spells them.
const (
	phaseHealthz = "healthz"
	phaseWrite   = "write"
)

// setupWorkers bounds the concurrency of the unmeasured setup, which only has to finish, not to
// load the server.
const setupWorkers = 8

type config struct {
	addr     string
	clients  int
	duration time.Duration
	warmup   time.Duration
	courses  int
	modules  int
	learners int
	prefix   string
	phases   []string
	json     bool
}

// run parses args, measures the phases they ask for and writes the report to stdout. It returns
// an error if the run could not be made, or if any command of the write phase failed.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := parseConfig(args, time.Now())
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	fx, err := newFixture(cfg)
	if err != nil {
		return err
	}

	api := newAPI(cfg.addr, max(cfg.clients, setupWorkers))
	defer api.close()

	rep := newReport(cfg)
	rep.writeHeader(stdout)

	// One request first, so a wrong -addr fails in a second, not after the setup or a phase of
	// transport errors.
	if err := api.get(ctx, "/healthz"); err != nil {
		return fmt.Errorf("server at %s is not answering: %w", cfg.addr, err)
	}

	// Setup comes before every phase, so both measure the same server state and a failing setup
	// costs no phase time.
	if slices.Contains(cfg.phases, phaseWrite) {
		started := time.Now()
		if err := setup(ctx, api, fx); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		rep.setupDone(stdout, fx, time.Since(started))
	}

	for _, name := range cfg.phases {
		var clients []client
		switch name {
		case phaseHealthz:
			clients = healthzClients(api, cfg.clients)
		case phaseWrite:
			clients = writeClients(api, fx)
		}
		res, err := runPhase(ctx, clients, cfg.warmup, cfg.duration)
		if err != nil {
			return fmt.Errorf("%s phase: %w", name, err)
		}
		rep.addPhase(stdout, name, res)
		if name == phaseWrite {
			if n := wrappedClients(clients); n > 0 {
				rep.warn(stdout, fmt.Sprintf("%d of %d clients ran out of (learner, course) pairs and wrapped around: "+
					"their later commands were no-ops, not appends; raise -learners or -courses", n, len(clients)))
			}
		}
	}

	rep.writeFooter(stdout)
	if cfg.json {
		if err := rep.writeJSON(stdout); err != nil {
			return fmt.Errorf("write json report: %w", err)
		}
	}

	if w, ok := rep.phase(phaseWrite); ok && w.Errors > 0 {
		return fmt.Errorf("write phase: %d of %d commands failed", w.Errors, w.Requests)
	}
	return nil
}

func parseConfig(args []string, now time.Time) (config, error) {
	cfg := config{}
	var phases string
	fs := newFlagSet(&cfg, &phases, now)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (run with -h for usage)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q (run with -h for usage)", fs.Args())
	}

	var problems []string
	u, err := url.Parse(cfg.addr)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("-addr: %v", err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.RawQuery != "", u.Fragment != "":
		problems = append(problems, fmt.Sprintf("-addr %q: want http(s)://host:port", cfg.addr))
	}
	cfg.addr = strings.TrimRight(cfg.addr, "/")
	if cfg.clients < 1 {
		problems = append(problems, "-clients must be at least 1")
	}
	if cfg.duration <= 0 {
		problems = append(problems, "-duration must be positive")
	}
	if cfg.warmup < 0 {
		problems = append(problems, "-warmup must not be negative")
	}
	if cfg.courses < 1 || cfg.modules < 1 || cfg.learners < 1 {
		problems = append(problems, "-courses, -modules and -learners must be at least 1")
	}
	if !idPattern.MatchString(cfg.prefix) {
		problems = append(problems, fmt.Sprintf("-prefix %q: want letters a-z, digits and '-'", cfg.prefix))
	}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p != phaseHealthz && p != phaseWrite:
			problems = append(problems, fmt.Sprintf("-phases: unknown phase %q (want healthz, write)", p))
		case slices.Contains(cfg.phases, p):
			problems = append(problems, fmt.Sprintf("-phases: %q given twice", p))
		default:
			cfg.phases = append(cfg.phases, p)
		}
	}
	if len(problems) > 0 {
		return config{}, fmt.Errorf("invalid flags: %s", strings.Join(problems, "; "))
	}
	return cfg, nil
}

func newFlagSet(cfg *config, phases *string, now time.Time) *flag.FlagSet {
	fs := flag.NewFlagSet("edutrack-load", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", "http://127.0.0.1:8080", "base `URL` of the EduTrack server; the only host the tool sends to")
	fs.IntVar(&cfg.clients, "clients", 64, "concurrent clients, each sending one request at a time")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each phase")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unrecorded time at the start of each phase")
	fs.IntVar(&cfg.courses, "courses", 20, "courses created by the setup")
	fs.IntVar(&cfg.modules, "modules", 50, "modules per course")
	fs.IntVar(&cfg.learners, "learners", 8, "learners per client")
	fs.StringVar(&cfg.prefix, "prefix", fmt.Sprintf("r%d", now.Unix()),
		"put in front of every id, so runs against the same data do not collide")
	fs.StringVar(phases, "phases", phaseHealthz+","+phaseWrite, "comma-separated phases to run, in order: healthz, write")
	fs.BoolVar(&cfg.json, "json", false, "also print the report as JSON")
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: edutrack-load [flags]

Measures EduTrack's write API, an EnrollStudent + CompleteModule mix from concurrent clients,
and compares it with the rate the same server answers GET /healthz under the same concurrency.
Exits non-zero if any command of the write phase failed.

Flags:
`)
	fs := newFlagSet(&config{}, new(string), time.Now())
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// machine says what ran the measurement, so a recorded result can be compared with another.
func machine() string {
	return fmt.Sprintf("GOMAXPROCS=%d NumCPU=%d %s %s/%s",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
