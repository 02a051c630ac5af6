// Command warden-bench is a load generator for MQTT brokers: it drives
// any broker at the address it is given (warden, Mosquitto, ...) with
// Eclipse Paho MQTT 5 clients, or bare sockets where thousands of clients
// or messages would make paho cost more than the broker, and reports
// connect rates, end-to-end latencies, lost messages and, given the
// broker's process ID, the broker's CPU time per unit of work and its
// resident memory.
//
//	warden-bench SCENARIO [flags]
//	warden-bench summarize [flags] RESULT.json...
//
// Scenarios: connect, reconnect-storm, pubsub, fanout, idle, retained,
// denied (see usage()). Every run is bounded: counts and durations are
// flags, and --timeout ends a run that takes too long. It prints a table
// to stdout, writes the same figures as JSON with --json, and prints one
// progress line per second to stderr. It connects only to --addr.
//
// Client i authenticates as user --user-prefix + (i mod --users) with
// --password, so a script creates the users first (as
// scripts/bench-compare.sh does, for warden and Mosquitto alike).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

const toolName = "warden-bench"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the run failed or was cut short
	exitUsage = 2 // bad flags
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// scenario is one kind of load.
type scenario interface {
	// flags registers the scenario's own flags.
	flags(fs *flag.FlagSet)
	// check validates them (after parsing).
	check(o *options) error
	// run drives the broker and adds its figures to r. It returns early,
	// with an error, when ctx ends.
	run(ctx context.Context, b *bench, r *Result) error
}

// scenarios lists the scenarios in the order usage shows them.
var scenarios = []struct {
	name, summary string
	new           func() scenario
}{
	{"connect", "N clients connect and disconnect, C at a time: connects/s, CONNECT latency, refusals", func() scenario { return &connectScenario{} }},
	{"reconnect-storm", "N clients connected, all dropped at once, all reconnect at once: time until all are back", func() scenario { return &stormScenario{} }},
	{"pubsub", "P publishers -> S subscribers for D seconds at QoS 0 or 1: deliveries/s, end-to-end latency, lost messages", func() scenario { return &flowScenario{fanout: false} }},
	{"fanout", "1 publisher -> S subscribers, each on a wildcard subscription: deliveries/s, latency, lost messages", func() scenario { return &flowScenario{fanout: true} }},
	{"idle", "N bare clients connect and stay idle: broker resident memory per connected client, connect time", func() scenario { return &idleScenario{} }},
	{"retained", "one publisher stores R retained messages, one subscriber receives them all: times, memory, CPU per message", func() scenario { return &retainedScenario{} }},
	{"denied", "legitimate clients connect while a flood of wrong passwords runs: their CONNECT latency with and without the flood", func() scenario { return &deniedScenario{} }},
}

// options are the flags every scenario takes.
type options struct {
	addr           string
	userPrefix     string
	password       string
	users          int
	clientPrefix   string
	timeout        time.Duration
	connectTimeout time.Duration
	jsonPath       string
	label          string
	name           string
	brokerPID      int
	settle         time.Duration
	quiet          bool
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "addr", "127.0.0.1:1883", "MQTT broker address (host:port); the only address the bench connects to")
	fs.StringVar(&o.userPrefix, "user-prefix", "bench-", "client i authenticates as this prefix followed by i modulo --users")
	fs.StringVar(&o.password, "password", "", "password of every bench user (default: $WARDEN_BENCH_PASSWORD, which keeps it off the process list)")
	fs.IntVar(&o.users, "users", 100, "number of distinct users the script created (bench-0 ... bench-<users-1>)")
	fs.StringVar(&o.clientPrefix, "client-prefix", "wb-", "prefix of the client IDs (a random run tag and the client number follow)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "stop the run after this long, whatever the other settings")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "how long one CONNECT (or one QoS 1 publish) may take before it counts as failed")
	fs.StringVar(&o.jsonPath, "json", "", "also write the result as JSON to this file")
	fs.StringVar(&o.label, "label", "", "name of the broker under test in the result (default: --addr)")
	fs.StringVar(&o.name, "name", "", "name of this case in the result, to tell runs of one scenario with different settings apart (default: the scenario)")
	fs.IntVar(&o.brokerPID, "broker-pid", 0, "process ID of the broker, on this machine: report its CPU time and resident memory from /proc")
	fs.DurationVar(&o.settle, "settle", 0, "with --broker-pid: first wait, up to this long, until the broker's resident memory has stopped falling (what an earlier run freed is given back), so its memory figures start clean (0: no wait)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
}

func (o *options) check() error {
	var errs []error
	if o.addr == "" {
		errs = append(errs, errors.New("--addr is empty"))
	}
	if o.users < 1 {
		errs = append(errs, errors.New("--users must be at least 1"))
	}
	if o.timeout <= 0 || o.connectTimeout <= 0 {
		errs = append(errs, errors.New("--timeout and --connect-timeout must be positive"))
	}
	if o.brokerPID < 0 {
		errs = append(errs, errors.New("--broker-pid must be a process ID"))
	}
	if o.settle < 0 {
		errs = append(errs, errors.New("--settle must not be negative"))
	}
	return errors.Join(errs...)
}

// bench is what a scenario needs while it runs.
type bench struct {
	opts     options
	runTag   string // random, in client IDs and topics
	progress *progress
}

// brokerMeter starts measuring the broker process (nil without
// --broker-pid).
func (b *bench) brokerMeter() *meter {
	if b.opts.brokerPID == 0 {
		return nil
	}
	return startMeter(b.opts.brokerPID)
}

// addUsage stops the broker meter m (when there is one) and the client's
// own meter self, and adds their figures to r; work is the number of
// units (connects, deliveries) done while they ran.
func (b *bench) addUsage(r *Result, m, self *meter, per string, work float64) {
	if m != nil {
		r.addUsage("broker", m.stop(), per, work)
	}
	if self != nil {
		r.addUsage("client", self.stop(), "", 0)
	}
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(stderr, usage())
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "summarize" {
		return summarize(args[1:], stdout, stderr)
	}
	var sc scenario
	for _, s := range scenarios {
		if s.name == args[0] {
			sc = s.new()
		}
	}
	if sc == nil {
		fmt.Fprintf(stderr, "warden-bench: unknown scenario %q\n\n%s", args[0], usage())
		return exitUsage
	}

	fs := flag.NewFlagSet("warden-bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.register(fs)
	sc.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "warden-bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if o.password == "" {
		// Read here, not as the flag's default, so --help never shows it.
		o.password = os.Getenv("WARDEN_BENCH_PASSWORD")
	}
	if err := errors.Join(o.check(), sc.check(&o)); err != nil {
		fmt.Fprintf(stderr, "warden-bench %s: %v\n", args[0], err)
		return exitUsage
	}
	if o.label == "" {
		o.label = o.addr
	}
	if o.name == "" {
		o.name = args[0]
	}

	r := &Result{Tool: toolName, Scenario: args[0], Name: o.name, Label: o.label, Addr: o.addr,
		Started: time.Now().UTC(), Params: map[string]string{}}
	fs.VisitAll(func(f *flag.Flag) {
		// The password never leaves the process; nor do settings that
		// only shape the output.
		switch f.Name {
		case "password", "json", "quiet":
			return
		}
		r.Params[f.Name] = f.Value.String()
	})

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	b := &bench{opts: o, runTag: randomTag(), progress: startProgress(stderr, o.name, o.quiet)}
	var err error
	if o.settle > 0 && o.brokerPID != 0 {
		b.progress.set(func() string { return "waiting for the broker's resident memory to settle" })
		var waited time.Duration
		if waited, err = settle(ctx, o.brokerPID, o.settle); err == nil {
			r.add("broker_settle_s", "s", waited.Seconds())
		}
	}
	if err == nil {
		err = sc.run(ctx, b, r)
	}
	b.progress.stop()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("stopped by --timeout %s; the figures are partial", o.timeout)
	case ctx.Err() != nil:
		err = errors.New("interrupted; the figures are partial")
	}
	r.ElapsedS = time.Since(r.Started).Seconds()
	r.Complete = err == nil
	if err != nil {
		r.Error = err.Error()
	}
	r.printTable(stdout)
	if o.jsonPath != "" {
		if werr := r.writeJSON(o.jsonPath); werr != nil {
			fmt.Fprintf(stderr, "warden-bench: %v\n", werr)
			return exitFail
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "warden-bench %s: %v\n", args[0], err)
		return exitFail
	}
	return exitOK
}

// randomTag is a short random hex string.
func randomTag() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func usage() string {
	var b strings.Builder
	b.WriteString(`Usage:
  warden-bench SCENARIO [flags]       run one scenario against --addr
  warden-bench SCENARIO --help        that scenario's flags
  warden-bench summarize [flags] FILE...
                                      medians and ratios over --json results

Scenarios:
`)
	for _, s := range scenarios {
		fmt.Fprintf(&b, "  %-16s %s\n", s.name, s.summary)
	}
	b.WriteString(`
Common flags (every scenario): --addr, --user-prefix, --password (or
$WARDEN_BENCH_PASSWORD), --users, --timeout, --connect-timeout, --json,
--label, --name, --broker-pid, --quiet.

Exit status: 0 when the run completed, 1 when it failed or --timeout cut
it short (the figures are still printed, marked INCOMPLETE), 2 for bad
flags.
`)
	return b.String()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
