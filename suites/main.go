package suites

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"yakimg/suites/report"
	"yakimg/version"
)

// options are Main's flags.
type options struct {
	channel    string
	suites     []string // resolved: known, deduplicated, in run order
	graphctl   string
	imageInfo  string
	cmdline    string
	state      string // the resume state file; "" derives it from the kernel command line
	noPoweroff bool
}

// Main runs `yakimg-runner suites`. Exit status: 0 every case passed or was
// skipped and the report was written; 1 a case failed, or the report
// channel or the power-off failed; 2 usage error (nothing is run).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, builtin)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, reg registry) int {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		o.suites, err = selectSuites(o, reg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "yakimg-runner suites: %v\n", err)
		return 2
	}
	code := runSuites(ctx, o, reg, stdout, stderr)
	if !o.noPoweroff {
		if err := poweroff(ctx, o.graphctl); err != nil {
			fmt.Fprintf(stderr, "yakimg-runner suites: %v\n", err)
			code = 1
		}
	}
	return code
}

const usage = `Usage: yakimg-runner suites [flags]

Runs the test suites inside the guest against the booted YakirOS, streams one
event per case and the report to the report channel, then asks YakirOS to
power off. Without --suite, the suites come from the kernel command line
(yakimg.suites=a,b), else every suite this build implements.

Example, on a development machine:
  yakimg-runner suites --channel /tmp/report.txt --no-poweroff --suite smoke

Flags:
`

type suiteList []string

func (l *suiteList) String() string { return strings.Join(*l, ",") }
func (l *suiteList) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseFlags(args []string, stdout io.Writer) (options, error) {
	var o options
	var requested suiteList
	fs := flag.NewFlagSet("suites", flag.ContinueOnError)
	fs.StringVar(&o.channel, "channel", "/dev/ttyS1", "report channel: serial port or file")
	fs.Var(&requested, "suite", "suite to run, repeatable or comma-separated (default: yakimg.suites= on the kernel command line, else all available)")
	fs.StringVar(&o.graphctl, "graphctl", "/usr/bin/graphctl", "graphctl binary")
	fs.StringVar(&o.imageInfo, "image-info", "/etc/yakimg/image.json", "image identity written by the builder")
	fs.StringVar(&o.cmdline, "cmdline", "/proc/cmdline", "kernel command line")
	fs.StringVar(&o.state, "state", "", "where the run's progress is saved across a kexec (default: yakimg-runner.json in the kexec state directory, /checkpoint or yakiros.checkpoint=)")
	fs.BoolVar(&o.noPoweroff, "no-poweroff", false, "do not power off when done (for runs outside a guest)")
	// Errors are reported as one line by the caller; usage only on --help.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	o.suites = requested
	return o, nil
}

// selectSuites resolves the suites to run: the flags, else the kernel
// command line, else all available. Unknown names are an error.
func selectSuites(o options, reg registry) ([]string, error) {
	requested := o.suites
	if len(requested) == 0 {
		var err error
		if requested, err = cmdlineSuites(o.cmdline); err != nil {
			return nil, err
		}
	}
	if len(requested) == 0 {
		return reg.available(), nil
	}
	var out []string
	for _, name := range requested {
		if !reg.isKnown(name) {
			return nil, fmt.Errorf("unknown suite %q (known: %s)", name, strings.Join(reg.known, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// cmdlineSuites returns the value of the last yakimg.suites= on the kernel
// command line at path, split at commas.
func cmdlineSuites(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	var out []string
	for _, f := range strings.Fields(string(data)) {
		if v, ok := strings.CutPrefix(f, "yakimg.suites="); ok {
			out = splitList(v)
		}
	}
	return out, nil
}

// runSuites runs o.suites and writes hello, events, report and done to the
// report channel. After a kexec that a case asked for, it resumes the run
// from the progress saved before (resume.go): hello again, the rest of
// that case, the cases and suites after it, and the one report. Failing to
// learn a fact about the guest leaves it empty in the report and is
// logged; it does not stop the run.
func runSuites(ctx context.Context, o options, reg registry, stdout, stderr io.Writer) int {
	r := &runner{o: o, reg: reg, stdout: stdout, stderr: stderr, metrics: &metrics{}}
	info, err := readImageInfo(o.imageInfo)
	r.logErr(err)
	if r.statePath, err = statePath(o); err != nil {
		r.logErr(err)
	}
	saved := r.loadResume()
	ch, err := report.OpenSerial(o.channel)
	if err != nil {
		r.logErr(err)
		return 1
	}
	defer ch.Close()
	r.w = report.NewWriter(ch)
	r.rep = &report.Report{
		YakirosVersion: info.YakirosVersion,
		Image:          report.Image{Digest: info.ImageDigest, LockDigest: info.LockDigest},
		TestResults:    map[string]*report.SuiteResult{},
	}
	r.rep.TestRunID, err = bootID()
	r.logErr(err)
	first := position{}
	if saved != nil {
		first = r.resume(saved)
	}
	r.channelErr(r.w.Hello(report.Hello{Runner: version.Version, ImageDigest: info.ImageDigest, Suites: r.o.suites, Resumed: saved != nil}))
	for si := first.suite; si < len(r.o.suites); si++ {
		name := r.o.suites[si]
		from := position{suite: si}
		if si == first.suite {
			from = first
		}
		res := r.runSuite(ctx, name, from)
		if res.Failed > 0 {
			r.code = 1
		}
		r.rep.TestResults[report.Key(name)] = res
	}

	r.rep.VMConfig, err = vmConfig(info.OS)
	r.logErr(err)
	r.rep.PerformanceMetrics, err = pid1Metrics()
	r.logErr(err)
	for name, v := range r.metrics.snapshot() {
		r.rep.PerformanceMetrics[name] = v
	}
	r.channelErr(r.w.Report(r.rep))
	r.channelErr(drain(ch))
	return r.code
}

// runner is one run of the suites.
type runner struct {
	o              options
	reg            registry
	stdout, stderr io.Writer
	w              *report.Writer
	rep            *report.Report
	metrics        *metrics
	code           int
	statePath      string

	// Where the run is, for a case that asks for a kexec.
	at         position
	suiteStart time.Time
	res        *report.SuiteResult // the current suite's cases so far
	caseStart  time.Time
}

// position is a case of the run: o.suites[suite], its case number kase.
// resumed, when set, is what that case saved before a kexec: it runs its
// Resume half with it.
type position struct {
	suite, kase int
	resumed     json.RawMessage
	suiteStart  time.Time
	caseStart   time.Time
	res         *report.SuiteResult
}

func (r *runner) logErr(err error) {
	if err != nil {
		fmt.Fprintf(r.stderr, "yakimg-runner suites: %v\n", err)
	}
}

func (r *runner) channelErr(err error) {
	if err != nil {
		r.logErr(err)
		r.code = 1
	}
}

// drainTimeout bounds the wait for a serial port that cannot transmit, so
// the power-off still happens.
const drainTimeout = 10 * time.Second

// drain waits until the report has left the UART, so that the power-off
// which follows cannot cut it short.
func drain(ch *os.File) error {
	done := make(chan error, 1)
	go func() { done <- report.Drain(ch) }()
	select {
	case err := <-done:
		return err
	case <-time.After(drainTimeout):
		return fmt.Errorf("report channel %s did not drain within %v", ch.Name(), drainTimeout)
	}
}

// runSuite runs suite name from the case from names (a resumed run starts
// in the middle), writing an event after each case. A known suite this
// build does not implement is one skipped case saying so.
func (r *runner) runSuite(ctx context.Context, name string, from position) *report.SuiteResult {
	r.at, r.suiteStart, r.res = from, time.Now(), &report.SuiteResult{Cases: []report.Case{}}
	if from.res != nil {
		r.suiteStart, r.res = from.suiteStart, from.res
	}
	finished := func(c report.Case) {
		r.res.Add(c)
		fmt.Fprintf(r.stdout, "%s %s/%s (%d ms)", strings.ToUpper(c.Status), name, c.Name, c.DurationMS)
		if c.Message != "" {
			fmt.Fprintf(r.stdout, ": %s", c.Message)
		}
		fmt.Fprintln(r.stdout)
		r.channelErr(r.w.Event(report.Event{Suite: name, Case: c.Name, Status: c.Status, DurationMS: c.DurationMS, Message: c.Message}))
	}
	s, ok := r.reg.suite(name)
	if !ok {
		finished(report.Case{
			Name:    "not-implemented",
			Status:  report.Skip,
			Message: fmt.Sprintf("suite %s is not implemented in this build (available: %s)", name, strings.Join(r.reg.available(), ", ")),
		})
	}
	e := env{graphctl: r.o.graphctl, metrics: r.metrics, kexec: r.requestKexec, cancel: r.cancelKexec}
	for i := from.kase; i < len(s.Cases); i++ {
		c := s.Cases[i]
		r.at.kase, r.caseStart = i, time.Now()
		if i == from.kase && from.resumed != nil {
			finished(r.resumeCase(ctx, e, c, from))
			continue
		}
		finished(runCase(ctx, e, c))
	}
	r.res.DurationMS = time.Since(r.suiteStart).Milliseconds()
	return r.res
}

// poweroffTimeout bounds the request; YakirOS may well stop the runner
// before graphctl returns.
const poweroffTimeout = 30 * time.Second

// poweroff asks YakirOS to power the guest off cleanly, even when the run
// was cancelled.
func poweroff(ctx context.Context, graphctl string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), poweroffTimeout)
	defer cancel()
	_, _, err := runGraphctl(ctx, graphctl, "poweroff")
	return err
}
