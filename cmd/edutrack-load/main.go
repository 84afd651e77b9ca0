// Command edutrack-load measures EduTrack under load from concurrent clients: the write API (an
// EnrollStudent + CompleteModule mix), hot reads of the read API with their cache hit rate, and
// how long an append takes to show in a read model; each compared, in the same run, with a
// baseline: GET /healthz of the same server, or a static server such as nginx serving the same
// bytes. Also live streams, and the jobs: enrollment emails, to an SMTP sink of its own, and
// certificates.
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
	"path/filepath"
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
	phaseHealthz  = "healthz"
	phaseWrite    = "write"
	phaseReads    = "reads"
	phaseStatic   = "static"
	phaseLag      = "lag"
	phaseLive     = "live"
	phaseJobs     = "jobs"
	phaseScenario = "scenario"
	phaseGraphQL  = "graphql"
)

var allPhases = []string{phaseHealthz, phaseWrite, phaseReads, phaseStatic, phaseLag, phaseLive, phaseJobs, phaseScenario, phaseGraphQL}

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
	readMix  float64 // share of course-detail reads in the reads phase; the rest are dashboards
	zipfS    float64
	lagRate  float64 // commands per second of the lag and live phases, over all clients
	// liveConns is how many streams the live phase opens, spread over liveAddrs (default addr).
	liveConns int
	liveAddrs []string
	static    string // the URL the static phase GETs
	saveBody  string // where the setup writes a course detail body, if set
	// The jobs phase: where its SMTP sink listens, how many learners enroll (each an email), how
	// many of them complete the course at once, and how many one at a time.
	smtpListen       string
	jobsEmails       int
	jobsCertificates int
	jobsIdle         int
	// tokenKey is the server's signing key file; with it, tok mints every request's token.
	tokenKey string
	tok      *tokens
	// The scenario phase: its users (instructors among them), think time, courses and modules;
	// the read processes its users read from, and the server processes it reads /proc of.
	users, instructors               int
	think                            time.Duration
	scenarioCourses, scenarioModules int
	readAddrsRaw, serverPIDsRaw      string
	readAddrs                        []string
	serverPIDs                       []int
}

func (c config) has(phase string) bool { return slices.Contains(c.phases, phase) }

// run parses args, measures the phases they ask for and writes the report to stdout. It returns
// an error if the run could not be made, or if any request of the write, reads or lag phase
// failed.
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
	if cfg.tok, err = loadTokens(cfg.tokenKey); err != nil {
		return err
	}
	fx, err := newFixture(cfg)
	if err != nil {
		return err
	}
	if cfg.saveBody != "" {
		// Checked now, not after the setup has run.
		if st, err := os.Stat(filepath.Dir(cfg.saveBody)); err != nil || !st.IsDir() {
			return fmt.Errorf("-save-body %s: its directory does not exist", cfg.saveBody)
		}
	}

	var static *api
	if cfg.has(phaseStatic) {
		static = newAPI("", cfg.clients)
		defer static.close()
	}
	api := newAPI(cfg.addr, max(cfg.clients, setupWorkers))
	defer api.close()
	// The setup, the waits and the reads of /metrics go as the admins of the pool, in turn.
	api = api.asEach(cfg.tok.admin)

	rep := newReport(cfg)
	rep.writeHeader(stdout)

	// One request first, so a wrong -addr fails in a second, not after the setup or a phase of
	// transport errors.
	if err := api.get(ctx, "/healthz"); err != nil {
		return fmt.Errorf("server at %s is not answering: %w", cfg.addr, err)
	}
	// The static server may serve the body -save-body writes, so with it the check waits for
	// the setup.
	if static != nil && cfg.saveBody == "" {
		if err := checkStatic(ctx, static, cfg.static); err != nil {
			return err
		}
	}

	// Setup comes before every phase, so all measure the same server state and a failing setup
	// costs no phase time. The write and lag phases share the writers, so a lag phase after a
	// write phase sends fresh commands too.
	var writers []*writeClient
	var known uint64 // the highest log position any command answered
	if cfg.has(phaseWrite) || cfg.has(phaseReads) || cfg.has(phaseLag) || cfg.has(phaseLive) || cfg.has(phaseGraphQL) || cfg.saveBody != "" {
		started := time.Now()
		if known, err = setup(ctx, api, fx); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		rep.setupDone(stdout, fx, known, time.Since(started))
		writers = writeClients(api, fx, cfg.tok)
	}
	if cfg.saveBody != "" {
		n, err := saveBody(ctx, api, fx, known, cfg.saveBody)
		if err != nil {
			return err
		}
		rep.saved(stdout, fx.courses[0], cfg.saveBody, n)
		if static != nil {
			if err := checkStatic(ctx, static, cfg.static); err != nil {
				return err
			}
		}
	}

	for _, name := range cfg.phases {
		if name == phaseReads || name == phaseLag || name == phaseGraphQL {
			known = max(known, lastPosition(writers))
			started := time.Now()
			if err := settle(ctx, api, fx, known); err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			rep.settled(stdout, known, time.Since(started))
		}

		if name == phaseLive {
			known = max(known, lastPosition(writers))
			if err := runLivePhase(ctx, stdout, rep, writers, fx, known, cfg); err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			continue
		}
		if name == phaseScenario {
			if err := runScenarioPhase(ctx, stdout, rep, api, cfg); err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			continue
		}
		if name == phaseGraphQL {
			if err := runGraphQLPhase(ctx, stdout, rep, api, cfg); err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			continue
		}
		if name == phaseJobs {
			if err := runJobsPhase(ctx, stdout, rep, api, cfg); err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			continue
		}

		var clients []client
		var measuring func()
		var cache cacheWindow
		switch name {
		case phaseHealthz:
			clients = healthzClients(api, cfg.clients)
		case phaseWrite:
			clients = asClients(writers)
		case phaseReads:
			clients = readClients(api, fx, cfg.clients, cfg.readMix, cfg.zipfS, cfg.tok)
			measuring = func() { cache.before, cache.err = cacheCounters(ctx, api) }
		case phaseStatic:
			clients = staticClients(static, cfg.static, cfg.clients)
		case phaseLag:
			res, err := runLag(ctx, writers, cfg.lagRate, cfg.warmup, cfg.duration)
			if err != nil {
				return fmt.Errorf("%s phase: %w", name, err)
			}
			rep.addLagPhase(stdout, res)
			warnWrapped(stdout, rep, writers)
			continue
		}
		res, err := runPhase(ctx, clients, cfg.warmup, cfg.duration, measuring)
		if err != nil {
			return fmt.Errorf("%s phase: %w", name, err)
		}
		rep.addPhase(stdout, name, res)
		switch name {
		case phaseWrite:
			warnWrapped(stdout, rep, writers)
		case phaseReads:
			if cache.err == nil {
				cache.after, cache.err = cacheCounters(ctx, api)
			}
			rep.addCache(stdout, cache)
		}
	}

	rep.writeFooter(stdout)
	if cfg.json {
		if err := rep.writeJSON(stdout); err != nil {
			return fmt.Errorf("write json report: %w", err)
		}
	}
	return rep.failures()
}

// warnWrapped warns if writers ran out of fresh commands, as their later commands measured
// no-ops.
func warnWrapped(stdout io.Writer, rep *report, writers []*writeClient) {
	if n := wrappedClients(writers); n > 0 {
		rep.warn(stdout, fmt.Sprintf("%d of %d clients ran out of (learner, course) pairs and wrapped around: "+
			"their later commands were no-ops, not appends; raise -learners or -courses", n, len(writers)))
	}
}

// checkStatic makes one request to the static server, so a wrong -static-url fails before the
// phases.
func checkStatic(ctx context.Context, static *api, url string) error {
	if err := static.get(ctx, url); err != nil {
		return fmt.Errorf("static server at %s is not answering: %w", url, err)
	}
	return nil
}

// saveBody writes the first course's detail, the hottest of the reads phase, as the read API
// answers it once the setup is visible, to path, for a static server to serve the same bytes. It
// returns their size.
func saveBody(ctx context.Context, api *api, fx fixture, pos uint64, path string) (int, error) {
	if err := settle(ctx, api, fx, pos); err != nil {
		return 0, fmt.Errorf("save body: %w", err)
	}
	body, err := api.fetch(ctx, "/v1/courses/"+fx.courses[0])
	if err != nil {
		return 0, fmt.Errorf("save body: %w", err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return 0, fmt.Errorf("save body: %w", err)
	}
	return len(body), nil
}

func parseConfig(args []string, now time.Time) (config, error) {
	cfg := config{}
	var phases, liveAddrs string
	fs := newFlagSet(&cfg, &phases, &liveAddrs, now)
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
	if cfg.readMix < 0 || cfg.readMix > 1 {
		problems = append(problems, "-read-mix must be from 0 to 1")
	}
	if !(cfg.zipfS > 1) {
		problems = append(problems, "-zipf-s must be above 1")
	}
	if !(cfg.lagRate > 0) {
		problems = append(problems, "-lag-rate must be positive")
	}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case !slices.Contains(allPhases, p):
			problems = append(problems, fmt.Sprintf("-phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ", ")))
		case slices.Contains(cfg.phases, p):
			problems = append(problems, fmt.Sprintf("-phases: %q given twice", p))
		default:
			cfg.phases = append(cfg.phases, p)
		}
	}
	problems = append(problems, parseLiveFlags(&cfg, liveAddrs)...)
	problems = append(problems, checkJobsFlags(cfg)...)
	problems = append(problems, parseScenarioFlags(&cfg)...)
	if cfg.static != "" {
		u, err := url.Parse(cfg.static)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("-static-url: %v", err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Fragment != "":
			problems = append(problems, fmt.Sprintf("-static-url %q: want http(s)://host:port/path", cfg.static))
		}
	} else if cfg.has(phaseStatic) {
		problems = append(problems, "-phases static needs -static-url")
	}
	if len(problems) > 0 {
		return config{}, fmt.Errorf("invalid flags: %s", strings.Join(problems, "; "))
	}
	return cfg, nil
}

func newFlagSet(cfg *config, phases, liveAddrs *string, now time.Time) *flag.FlagSet {
	fs := flag.NewFlagSet("edutrack-load", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", "http://127.0.0.1:8080", "base `URL` of the EduTrack server; with -static-url, the only hosts the tool sends to")
	fs.IntVar(&cfg.clients, "clients", 64, "concurrent clients, each sending one request at a time")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each phase")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unrecorded time at the start of each phase")
	fs.IntVar(&cfg.courses, "courses", 20, "courses created by the setup")
	fs.IntVar(&cfg.modules, "modules", 50, "modules per course")
	fs.IntVar(&cfg.learners, "learners", 8, "learners per client")
	fs.StringVar(&cfg.prefix, "prefix", fmt.Sprintf("r%d", now.Unix()),
		"put in front of every id, so runs against the same data do not collide")
	fs.StringVar(phases, "phases", phaseHealthz+","+phaseWrite,
		"comma-separated phases to run, in the order given: "+strings.Join(allPhases, ", "))
	fs.BoolVar(&cfg.json, "json", false, "also print the report as JSON")
	fs.Float64Var(&cfg.readMix, "read-mix", 0.5, "share of the reads phase's GETs that ask for a course detail, from 0 to 1; the rest ask for a dashboard")
	fs.Float64Var(&cfg.zipfS, "zipf-s", 1.1, "exponent s of the Zipf distribution the reads phase draws ids from, above 1; higher is hotter")
	fs.Float64Var(&cfg.lagRate, "lag-rate", 1000, "commands per second the lag and live phases send, spread evenly over the clients")
	fs.IntVar(&cfg.liveConns, "live-conns", 10000, "live streams (GET /v1/live) the live phase opens, each following one learner")
	fs.StringVar(liveAddrs, "live-addrs", "", "comma-separated base `URLs` of the read processes the live phase opens its streams on, in turn (default -addr)")
	fs.StringVar(&cfg.static, "static-url", "", "`URL` the static phase GETs, such as nginx serving the file -save-body wrote")
	fs.StringVar(&cfg.saveBody, "save-body", "", "after the setup, write the first course's detail, as the read API answers it, to `PATH`")
	fs.StringVar(&cfg.smtpListen, "smtp-listen", "127.0.0.1:2525", "`host:port` the jobs phase's SMTP sink listens on: the server's EDUTRACK_SMTP_URL")
	fs.IntVar(&cfg.jobsEmails, "jobs-emails", 2000, "learners the jobs phase enrolls, each an enrollment email")
	fs.IntVar(&cfg.jobsCertificates, "jobs-certificates", 1000, "of them, how many complete the course at once, each a certificate")
	fs.IntVar(&cfg.jobsIdle, "jobs-idle", 100, "of the rest, how many complete it one at a time, each timed to its certificate")
	fs.StringVar(&cfg.tokenKey, "token-key", "", "the server's JWT signing key `FILE` (its data dir's jwt.key, or EDUTRACK_JWT_KEY_FILE): "+
		"with it every request carries a token of its user, minted with the default issuer and audience; without it, none (EDUTRACK_AUTH=disabled)")
	addScenarioFlags(fs, cfg)
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: edutrack-load [flags]

Measures an EduTrack server under load from -clients concurrent clients, in the phases -phases
names, each for -warmup (not recorded) plus -duration:

  healthz  GET /healthz: the cheapest request the server answers, the baseline of write.
  write    EnrollStudent + CompleteModule, as fast as the server answers; every command appends.
  reads    GET course details and learner dashboards (-read-mix), ids drawn from a Zipf
           distribution (-zipf-s) over all courses and all learners; reports bytes per response
           and the cache hit rate of the measured time, from the server's /metrics.
  static   GET -static-url, such as nginx serving the bytes -save-body wrote: the baseline of
           reads. With both, the report gives the reads/static ratio.
  lag      -lag-rate commands per second in all, each client at its own even pace; after each
           command, GET its learner's dashboard with ?minPosition= the position the command
           answered, and report that GET's latency: the time from append to visible in the read
           model, plus one round trip. Commands that start late because the client was still busy
           are counted, not sent in a burst; a 503 is "not visible within the wait".
  live     -live-conns streams of GET /v1/live over -live-addrs, each following one learner
           (learner:<id>, the learners in turn), then commands paced as in lag; for each command,
           the time from its answer to its message on every stream of its learner (also to the
           first and the last of them), messages missed and resyncs; and each server's resident
           memory before and after the streams opened, its CPU and its edutrack_live_* metrics,
           from its /metrics. A change is timed to the first message past the learner's
           previous command; when that message is a later change's (the hub sends a document
           once, and read it after the later change), the change is counted as superseded. One
           with no such message within 5 s is missed, or came early, in an earlier change's
           message whose document was read after it, which ids cannot show.
  jobs     its own course and -jobs-emails learners; needs the server's EDUTRACK_SMTP_URL at
           the SMTP sink the tool runs on -smtp-listen, and certificates on. Each learner
           enrolls (-clients at once): enrollment emails a second at the sink, Message-IDs
           checked unique. Then -jobs-certificates of them complete the course at once:
           certificates a second, counted as edutrack_jobs{kind="certificate",state="completed"}
           from /metrics, and the server's CPU meanwhile. Then -jobs-idle others, one at a
           time: from the completion's answer to the certificate on the learner's dashboard.
  scenario a school: -users virtual users (-instructors of them instructors), each with its
           own token (-token-key), keep-alive connection and live stream (opened with a
           ticket), starting one after another over -warmup. Learners browse or search the
           catalog, open a course, enroll, complete its next module, open their dashboard and
           now and then download a certificate it shows; instructors read their course's stats
           and roster and now and then edit it. Each request is followed by a think time of
           half to one and a half -think. Reports per templated route the rate, P50/P95/P99/
           P99.9 and errors (a 429 among them), offered and answered rates, the cache hit
           rate, and each server's CPU, peak RSS and store P95s from /metrics (and /proc of
           -server-pids). With -read-addrs, reads and streams go there, commands to -addr.

With -token-key, every request carries a token minted with the server's key: the setup's as
one of a pool of admins, each command and dashboard of the write, reads, lag and live phases as
its learner. The rate limits then apply: a phase that sends as fast as the server answers
needs enough learners to stay within each one's budget.

The setup, run first if a write, reads or lag phase is asked for or -save-body is set, registers
an instructor, -courses courses of -modules modules and -learners learners per client, and
enrolls each learner in up to 3 courses with a module or two completed. Phases that read wait
first until the read models show every command sent so far.

The tool sends to -addr, in the static phase to -static-url, in the live phase to -live-addrs,
in the scenario to -read-addrs, and nowhere else. It exits non-zero if any request of the
write, reads, lag, live or scenario phase failed, a live stream could not be opened, or in the
jobs phase a command failed, an email or a certificate did not arrive, or an email arrived
twice.

Flags:
`)
	fs := newFlagSet(&config{}, new(string), new(string), time.Now())
	fs.SetOutput(w)
	fs.PrintDefaults()
}
