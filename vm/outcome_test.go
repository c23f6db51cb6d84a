package vm

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"yakimg/suites/report"
)

// transcript decodes what a guest would have written with report.Writer.
func transcript(t *testing.T, write func(w *report.Writer, raw *bytes.Buffer)) *report.Transcript {
	t.Helper()
	var buf bytes.Buffer
	write(report.NewWriter(&buf), &buf)
	tr, err := report.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func sampleReport(failed bool) *report.Report {
	s := &report.SuiteResult{}
	s.Add(report.Case{Name: "starts", Status: report.Pass})
	s.Add(report.Case{Name: "criu", Status: report.Skip, Message: "no CRIU"})
	if failed {
		s.Add(report.Case{Name: "swap", Status: report.Fail, Message: "connection reset"})
	}
	return &report.Report{TestResults: map[string]*report.SuiteResult{"hot_swap": s}}
}

func TestClassify(t *testing.T) {
	empty := &report.Transcript{}
	passed := transcript(t, func(w *report.Writer, _ *bytes.Buffer) { w.Report(sampleReport(false)) })
	failed := transcript(t, func(w *report.Writer, _ *bytes.Buffer) { w.Report(sampleReport(true)) })
	badSum := transcript(t, func(_ *report.Writer, raw *bytes.Buffer) {
		line, _ := report.Line(report.KindReport, sampleReport(false))
		done, _ := report.Line(report.KindDone, report.Done{SHA256: strings.Repeat("0", 64)})
		raw.Write(append(append(line, '\n'), append(done, '\n')...))
	})
	noDone := transcript(t, func(_ *report.Writer, raw *bytes.Buffer) {
		line, _ := report.Line(report.KindReport, sampleReport(false))
		raw.Write(append(line, '\n'))
	})
	garbage := transcript(t, func(w *report.Writer, raw *bytes.Buffer) {
		w.Hello(report.Hello{Runner: "r"})
		raw.WriteString("YAKIMG1 event {\"suite\": trunc\n")
	})
	sentinel := transcript(t, func(w *report.Writer, _ *bytes.Buffer) {
		w.Sentinel(report.Sentinel{Reason: "deadline passed", UptimeS: 300})
	})
	events := transcript(t, func(w *report.Writer, _ *bytes.Buffer) {
		w.Hello(report.Hello{Runner: "r"})
		w.Event(report.Event{Suite: "basic", Case: "a", Status: report.Pass})
	})
	hello := transcript(t, func(w *report.Writer, _ *bytes.Buffer) { w.Hello(report.Hello{Runner: "r"}) })
	_, notFound := exec.LookPath("yakimg-no-such-qemu")

	const panicLine = "Kernel panic - not syncing: Attempted to kill init!"
	for _, tc := range []struct {
		name   string
		obs    observation
		class  string
		exit   int
		detail string
	}{
		{"qemu missing", observation{startErr: notFound, missing: true}, ClassInfra, ExitInfra, "apt-get install qemu-system-x86"},
		{"qemu not startable", observation{startErr: errors.New("permission denied")}, ClassInfra, ExitInfra, "start QEMU: permission denied"},
		{"trusted pass", observation{transcript: passed}, ClassPassed, ExitPass, "1 passed, 1 skipped of 2 cases in 1 suites"},
		{"trusted fail", observation{transcript: failed}, ClassFailed, ExitFail, "1 of 3 cases failed; first: hot_swap/swap: connection reset"},
		{"trusted report beats a later panic", observation{transcript: passed, panicLine: panicLine}, ClassPassed, ExitPass, "afterwards the guest kernel panicked: " + panicLine},
		{"trusted report beats QEMU's exit status", observation{transcript: passed, exitCode: 1}, ClassPassed, ExitPass, "passed"},
		{"trusted report, guest killed after done", observation{transcript: failed, killed: killDone, signal: "killed"}, ClassFailed, ExitFail, "afterwards the guest did not power off"},
		{"panic", observation{transcript: empty, panicLine: panicLine}, ClassPanic, ExitPanic, panicLine},
		{"panic beats corrupt lines", observation{transcript: garbage, panicLine: panicLine, killed: killPanic}, ClassPanic, ExitPanic, panicLine},
		{"bad checksum", observation{transcript: badSum}, ClassReportCorrupt, ExitReport, "checksum mismatch"},
		{"garbled line", observation{transcript: garbage}, ClassReportCorrupt, ExitReport, "not valid JSON"},
		{"report without done", observation{transcript: noDone}, ClassReportCorrupt, ExitReport, "without a matching done"},
		{"report without done, timed out", observation{transcript: noDone, killed: killTimeout}, ClassReportCorrupt, ExitReport, "without a matching done"},
		{"guest watchdog", observation{transcript: sentinel}, ClassTimeout, ExitTimeout, "guest watchdog fired after 300s: deadline passed"},
		{"host timeout", observation{transcript: events, killed: killTimeout, signal: "killed", timeout: 15 * time.Second}, ClassTimeout, ExitTimeout, "no report within 15s"},
		{"interrupted", observation{transcript: empty, killed: killInterrupt, signal: "killed"}, ClassInfra, ExitInfra, "interrupted"},
		{"qemu crashed", observation{transcript: events, exitCode: -1, signal: "segmentation fault"}, ClassInfra, ExitInfra, "QEMU died by signal segmentation fault"},
		{"qemu failed", observation{transcript: empty, exitCode: 1, qemuLastErr: "qemu: could not load kernel"}, ClassInfra, ExitInfra, "status 1 without a report: qemu: could not load kernel"},
		{"clean exit, no report", observation{transcript: empty}, ClassReportMissing, ExitReport, "without sending a report"},
		{"clean exit after hello", observation{transcript: hello}, ClassReportMissing, ExitReport, "said hello"},
		{"clean exit after events", observation{transcript: events}, ClassReportMissing, ExitReport, "1 case events arrived"},
	} {
		class, detail := classify(tc.obs)
		if class != tc.class || classExit[class] != tc.exit || !strings.Contains(detail, tc.detail) {
			t.Errorf("%s: classify = %s (exit %d): %q; want %s (exit %d) with %q", tc.name, class, classExit[class], detail, tc.class, tc.exit, tc.detail)
		}
	}
}

func TestEveryClassHasItsExitCode(t *testing.T) {
	want := map[string]int{
		"passed": 0, "failed": 1, "panic": 3, "timeout": 4, "infra": 5, "report-missing": 6, "report-corrupt": 6,
	}
	if len(classExit) != len(want) {
		t.Errorf("classExit has %d classes; want %d", len(classExit), len(want))
	}
	for class, code := range want {
		if got, ok := classExit[class]; !ok || got != code {
			t.Errorf("classExit[%q] = %d, %v; want %d (DESIGN §3)", class, got, ok, code)
		}
	}
}
