package vm

import (
	"strings"
	"testing"

	"yakimg/suites/report"
)

func TestSummaryOfFailedRun(t *testing.T) {
	r := sampleReport(true)
	r.PerformanceMetrics = map[string]float64{"hot_swap_avg_ms": 12.5, "graph_resolution_ms": 3}
	r.TestResults["hot_swap"].DurationMS = 4523
	o := &Outcome{ExitCode: ExitFail, Class: ClassFailed, Detail: "1 of 3 cases failed", Accel: "tcg",
		Transcript: &report.Transcript{Report: r, Done: true}, ConsoleTail: []string{"console noise"}}
	var b strings.Builder
	o.Summary(&b)
	got := b.String()
	for _, want := range []string{
		"boot: tcg accelerator",
		"suite     passed  failed  skipped    time\nhot_swap       1       1        1    4.5s\n",
		"FAIL hot_swap/swap: connection reset",
		"SKIP hot_swap/criu: no CRIU",
		"metrics:\n  graph_resolution_ms  3\n  hot_swap_avg_ms      12.5\n",
		"verdict: failed (exit 1): 1 of 3 cases failed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "console noise") {
		t.Errorf("Summary of a run with a trusted report shows the console:\n%s", got)
	}
}

func TestSummaryOfBrokenRun(t *testing.T) {
	o := &Outcome{ExitCode: ExitInfra, Class: ClassInfra, Detail: "QEMU died by signal killed", Accel: "tcg",
		Transcript: &report.Transcript{
			Events:   []report.Event{{Suite: "hot-swap", Case: "a", Status: report.Pass}, {Suite: "hot-swap", Case: "b", Status: report.Fail, Message: "boom"}},
			Sentinel: &report.Sentinel{Reason: "deadline", UptimeS: 9, Diagnostics: "ps:\n1 graph-resolver"},
			Corrupt:  []string{"event frame: bad"},
		},
		ConsoleTail: []string{"last console line"},
		QEMUOutput:  "qemu-system-x86_64: terminating on signal 9\n",
	}
	var b strings.Builder
	o.Summary(&b)
	got := b.String()
	for _, want := range []string{
		"no trusted report; partial results from 2 case events:",
		"hot_swap       1       1        0      0s\n",
		"FAIL hot_swap/b: boom",
		"guest watchdog: deadline (uptime 9s)\n  ps:\n  1 graph-resolver\n",
		"1 report-channel lines could not be trusted:\n  event frame: bad\n",
		"  | last console line\n",
		"QEMU said:\n  qemu-system-x86_64: terminating on signal 9\n",
		"verdict: infra (exit 5): QEMU died by signal killed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Summary lacks %q:\n%s", want, got)
		}
	}
}
