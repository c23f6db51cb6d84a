package suites

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
	"yakimg/version"
)

// testRegistry knows alpha, beta and gamma; beta is not implemented.
var testRegistry = registry{
	known: []string{"alpha", "beta", "gamma"},
	suites: []Suite{
		{Name: "alpha", Cases: []Case{
			{Name: "passes", Run: func(t *T) { t.Logf("looked at %d things", 3) }},
			{Name: "fails", Run: func(t *T) { t.Fatalf("wanted %d", 42); panic("not reached") }},
			{Name: "skips", Run: func(t *T) { t.Skipf("no widget here") }},
			{Name: "panics", Run: func(t *T) { panic("boom") }},
		}},
		{Name: "gamma", Cases: []Case{
			{Name: "passes", Run: func(t *T) { t.Metric("things_looked_at", 3) }},
		}},
	},
}

type runResult struct {
	code           int
	stdout, stderr string
	lines          []string // raw lines of the channel
	tr             *report.Transcript
}

// runMain runs the runner with a channel file, a fake image.json and a
// kernel command line in a temp dir; extra args come last.
func runMain(t *testing.T, reg registry, cmdline string, args ...string) runResult {
	t.Helper()
	dir := t.TempDir()
	channel := filepath.Join(dir, "ttyS1")
	image := filepath.Join(dir, "image.json")
	cmdlineFile := filepath.Join(dir, "cmdline")
	writeFile(t, channel, "")
	writeFile(t, image, `{"yakiros_version":"v0.0.0-test","image_digest":"sha256:aaaa","lock_digest":"sha256:bbbb","os":"Debian 12 (bookworm)"}`)
	writeFile(t, cmdlineFile, cmdline+"\n")
	all := append([]string{"--channel", channel, "--image-info", image, "--cmdline", cmdlineFile, "--no-poweroff"}, args...)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), all, &stdout, &stderr, reg)
	data, err := os.ReadFile(channel)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := report.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String(), lines: lines, tr: tr}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunReportsEveryCase(t *testing.T) {
	r := runMain(t, testRegistry, "console=ttyS0", "--suite", "alpha")
	if r.code != 1 {
		t.Errorf("exit code = %d; want 1 (a case failed); stderr:\n%s", r.code, r.stderr)
	}
	tr := r.tr
	if !tr.Trusted() {
		t.Fatalf("transcript not trusted: done=%v corrupt=%v", tr.Done, tr.Corrupt)
	}
	kinds := make([]string, len(r.lines))
	for i, l := range r.lines {
		f, err := report.ParseLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		kinds[i] = f.Kind
	}
	want := []string{"hello", "event", "event", "event", "event", "report", "done"}
	if !slices.Equal(kinds, want) {
		t.Errorf("frames = %v; want %v", kinds, want)
	}
	if h := tr.Hello; h.Runner != version.Version || h.ImageDigest != "sha256:aaaa" || !slices.Equal(h.Suites, []string{"alpha"}) {
		t.Errorf("hello = %+v", *h)
	}

	wantStatus := map[string]string{"passes": "pass", "fails": "fail", "skips": "skip", "panics": "fail"}
	for _, e := range tr.Events {
		if e.Suite != "alpha" || e.Status != wantStatus[e.Case] {
			t.Errorf("event %+v; want suite alpha, status %s", e, wantStatus[e.Case])
		}
	}
	res := tr.Report.TestResults["alpha"]
	if res == nil || res.Passed != 1 || res.Failed != 2 || res.Skipped != 1 || len(res.Cases) != 4 {
		t.Fatalf("alpha result = %+v; want 1 passed, 2 failed, 1 skipped", res)
	}
	msgs := map[string]string{}
	for _, c := range res.Cases {
		msgs[c.Name] = c.Message
	}
	if msgs["passes"] != "looked at 3 things" || msgs["fails"] != "wanted 42" || msgs["skips"] != "no widget here" {
		t.Errorf("messages = %q", msgs)
	}
	if m := msgs["panics"]; !strings.Contains(m, "panic: boom") || !strings.Contains(m, "main_test.go:") {
		t.Errorf("panic message = %q; want the panic value and its site", m)
	}
}

func TestReportDescribesTheGuest(t *testing.T) {
	r := runMain(t, testRegistry, "", "--suite", "gamma")
	if r.code != 0 {
		t.Fatalf("exit code = %d; want 0; stderr:\n%s", r.code, r.stderr)
	}
	rep := r.tr.Report
	if rep.YakirosVersion != "v0.0.0-test" || rep.Image != (report.Image{Digest: "sha256:aaaa", LockDigest: "sha256:bbbb"}) {
		t.Errorf("version %q, image %+v; want those of image.json", rep.YakirosVersion, rep.Image)
	}
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	if rep.TestRunID != strings.TrimSpace(string(bootID)) {
		t.Errorf("test_run_id = %q; want the boot id %q", rep.TestRunID, bootID)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	vm := rep.VMConfig
	if vm.Kernel != unix.ByteSliceToString(u.Release[:]) || vm.CPUs != runtime.NumCPU() || vm.RAMMB <= 0 ||
		vm.OS != "Debian 12 (bookworm)" || vm.CPUModel == "" || vm.Accel != "" {
		t.Errorf("vm_config = %+v", vm)
	}
	rss, err := procKB("/proc/1/status", "VmRSS")
	if err != nil {
		t.Skipf("PID 1's memory is not readable here: %v", err)
	}
	if got := rep.PerformanceMetrics["yakiros_memory_kb"]; got <= 0 || got > 4*float64(rss)+1024 {
		t.Errorf("yakiros_memory_kb = %v; PID 1 has VmRSS %d kB now", got, rss)
	}
	if got, ok := rep.PerformanceMetrics["things_looked_at"]; !ok || got != 3 {
		t.Errorf("things_looked_at = %v, %v; want the 3 the case recorded", got, ok)
	}
	if _, ok := rep.PerformanceMetrics["component_startup_avg_ms"]; ok {
		t.Errorf("component_startup_avg_ms reported, but nothing measures it")
	}
}

func TestUnknownSuiteIsUsageError(t *testing.T) {
	r := runMain(t, testRegistry, "", "--suite", "gamma", "--suite", "nope")
	if r.code != 2 {
		t.Errorf("exit code = %d; want 2", r.code)
	}
	if lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"nope"`) {
		t.Errorf("stderr = %q; want one line naming the suite", r.stderr)
	}
	if len(r.lines) != 0 {
		t.Errorf("channel has %d lines; want nothing run", len(r.lines))
	}
}

func TestBadFlagIsUsageError(t *testing.T) {
	r := runMain(t, testRegistry, "", "--frobnicate")
	if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "frobnicate") {
		t.Errorf("exit %d, stderr %q; want 2 and one line", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr, testRegistry); code != 0 {
		t.Errorf("--help exit code = %d; want 0", code)
	}
	for _, want := range []string{"Example", "--no-poweroff", "-suite"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help does not mention %q:\n%s", want, stdout.String())
		}
	}
}

func TestKnownButUnimplementedSuiteIsSkipped(t *testing.T) {
	r := runMain(t, testRegistry, "", "--suite", "beta")
	if r.code != 0 {
		t.Errorf("exit code = %d; want 0", r.code)
	}
	if len(r.tr.Events) != 1 {
		t.Fatalf("events = %+v; want one", r.tr.Events)
	}
	e := r.tr.Events[0]
	if e.Suite != "beta" || e.Status != report.Skip || !strings.Contains(e.Message, "not implemented") {
		t.Errorf("event = %+v; want beta skipped as not implemented", e)
	}
	if res := r.tr.Report.TestResults["beta"]; res == nil || res.Skipped != 1 || res.Passed+res.Failed != 0 {
		t.Errorf("beta result = %+v", res)
	}
}

func TestSuitesFromKernelCommandLine(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
	}{
		{"console=ttyS0 yakimg.suites=gamma,beta,gamma panic=-1", []string{"gamma", "beta"}},
		{"yakimg.suites=alpha yakimg.suites=beta", []string{"beta"}},
		{"console=ttyS0", []string{"alpha", "gamma"}}, // all available
		{"yakimg.suites=", []string{"alpha", "gamma"}},
	} {
		r := runMain(t, testRegistry, tc.cmdline)
		if r.tr.Hello == nil || !slices.Equal(r.tr.Hello.Suites, tc.want) {
			t.Errorf("cmdline %q: hello = %+v; want suites %v", tc.cmdline, r.tr.Hello, tc.want)
			continue
		}
		var seen []string
		for _, e := range r.tr.Events {
			if !slices.Contains(seen, e.Suite) {
				seen = append(seen, e.Suite)
			}
		}
		if !slices.Equal(seen, tc.want) {
			t.Errorf("cmdline %q: suites run = %v; want %v", tc.cmdline, seen, tc.want)
		}
	}
}

func TestFlagOverridesKernelCommandLine(t *testing.T) {
	r := runMain(t, testRegistry, "yakimg.suites=alpha", "--suite", "gamma,beta")
	if !slices.Equal(r.tr.Hello.Suites, []string{"gamma", "beta"}) {
		t.Errorf("suites = %v; want [gamma beta]", r.tr.Hello.Suites)
	}
}

func TestCaseDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	reg := registry{known: []string{"slow"}, suites: []Suite{{Name: "slow", Cases: []Case{
		{Name: "ignores-deadline", Timeout: 50 * time.Millisecond, Run: func(t *T) { <-release }},
		{Name: "honours-deadline", Timeout: 50 * time.Millisecond, Run: func(t *T) {
			<-t.Context().Done()
			t.Fatalf("gave up waiting: %v", t.Context().Err())
		}},
		{Name: "runs-after", Run: func(t *T) {}},
	}}}}
	r := runMain(t, reg, "", "--suite", "slow")
	if !r.tr.Trusted() || len(r.tr.Events) != 3 {
		t.Fatalf("trusted=%v events=%+v; want a report with 3 events", r.tr.Trusted(), r.tr.Events)
	}
	ev := r.tr.Events
	if ev[0].Status != report.Fail || !strings.Contains(ev[0].Message, "did not return within 50ms") {
		t.Errorf("stuck case: %+v; want fail, abandoned", ev[0])
	}
	if ev[1].Status != report.Fail || ev[1].Message != "gave up waiting: context deadline exceeded" {
		t.Errorf("case that honours its deadline: %+v; want its own message", ev[1])
	}
	if ev[2].Status != report.Pass {
		t.Errorf("case after: %+v; want pass", ev[2])
	}
}

func TestSkipWithoutReasonFails(t *testing.T) {
	c := runCase(context.Background(), env{}, Case{Name: "x", Run: func(t *T) { t.Skipf("") }})
	if c.Status != report.Fail || !strings.Contains(c.Message, "without saying why") {
		t.Errorf("runCase = %+v; want fail", c)
	}
}

// fakeGraphctl writes an executable shell script standing in for graphctl.
func fakeGraphctl(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "graphctl")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPoweroffAfterDone(t *testing.T) {
	dir := t.TempDir()
	channel := filepath.Join(dir, "ttyS1")
	log := filepath.Join(dir, "graphctl.log")
	writeFile(t, channel, "")
	// The fake records its arguments, and whether done was already on the
	// channel when it ran.
	g := fakeGraphctl(t, `if grep -q '^YAKIMG1 done ' `+channel+`; then echo "after-done $*" >>`+log+`; else echo "early $*" >>`+log+`; fi`)
	args := []string{"--channel", channel, "--graphctl", g, "--image-info", filepath.Join(dir, "missing.json"), "--suite", "gamma"}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr, testRegistry); code != 0 {
		t.Errorf("exit code = %d; want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "missing.json") {
		t.Errorf("stderr = %q; want the missing image info reported", stderr.String())
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("graphctl never ran: %v", err)
	}
	if string(got) != "after-done poweroff\n" {
		t.Errorf("graphctl calls = %q; want one poweroff after the done frame", got)
	}
}

func TestPoweroffFailureIsReported(t *testing.T) {
	dir := t.TempDir()
	channel := filepath.Join(dir, "ttyS1")
	writeFile(t, channel, "")
	g := fakeGraphctl(t, "echo 'Error: not now' >&2; exit 1\n")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--channel", channel, "--graphctl", g, "--suite", "gamma"}, &stdout, &stderr, testRegistry)
	if code != 1 || !strings.Contains(stderr.String(), "graphctl poweroff: exit status 1: Error: not now") {
		t.Errorf("exit %d, stderr %q; want 1 and the poweroff error", code, stderr.String())
	}
}

func TestMissingChannelStillPowersOff(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "graphctl.log")
	g := fakeGraphctl(t, `echo "$*" >>`+log+"\n")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--channel", filepath.Join(dir, "no-such-tty"), "--graphctl", g, "--suite", "gamma"}, &stdout, &stderr, testRegistry)
	if code != 1 || !strings.Contains(stderr.String(), "no-such-tty") {
		t.Errorf("exit %d, stderr %q; want 1 and the channel error", code, stderr.String())
	}
	if got, _ := os.ReadFile(log); string(got) != "poweroff\n" {
		t.Errorf("graphctl calls = %q; want poweroff", got)
	}
}

func TestNamesAndAvailable(t *testing.T) {
	want := []string{"smoke", "basic", "hot-swap", "health-checks", "isolation", "graph-analysis", "checkpointing", "kexec", "performance"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v; want %v", got, want)
	}
	if got, want := Available(), []string{"smoke", "basic", "hot-swap", "health-checks", "graph-analysis", "isolation", "checkpointing", "kexec"}; !slices.Equal(got, want) {
		t.Errorf("Available() = %v; want %v", got, want)
	}
	for _, s := range builtin.suites {
		if !slices.Contains(Names(), s.Name) {
			t.Errorf("implemented suite %q is not in Names()", s.Name)
		}
		for _, c := range s.Cases {
			if c.Name == "" || c.Run == nil {
				t.Errorf("suite %s has a case without name or body", s.Name)
			}
		}
	}
}
