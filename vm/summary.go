package vm

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"yakimg/suites/report"
)

// Summary writes the human summary of a boot: per suite counts, failed and
// skipped cases with their messages, metrics, and the verdict with its exit
// code. When the boot went wrong it adds what explains it: partial results,
// the watchdog's diagnostics, bad report lines, the console's last lines and
// QEMU's own output.
func (o *Outcome) Summary(w io.Writer) {
	t := o.Transcript
	if t == nil {
		t = &report.Transcript{}
	}
	threads := ""
	switch o.TCGThreads {
	case TCGThreadsSingle:
		threads = " (vCPUs on one host thread)"
	case TCGThreadsMulti:
		threads = " (a host thread per vCPU)"
	}
	fmt.Fprintf(w, "boot: %s accelerator%s, %v\n", o.Accel, threads, o.Duration.Round(100*time.Millisecond))
	switch {
	case t.Trusted():
		writeResults(w, t.Report.TestResults)
		writeMetrics(w, t.Report.PerformanceMetrics)
	case len(t.Events) > 0:
		fmt.Fprintf(w, "no trusted report; partial results from %d case events:\n", len(t.Events))
		writeResults(w, fromEvents(t.Events))
	}
	if s := t.Sentinel; s != nil {
		fmt.Fprintf(w, "guest watchdog: %s (uptime %ds)\n", s.Reason, s.UptimeS)
		writeIndented(w, s.Diagnostics)
	}
	if n := len(t.Corrupt); n > 0 {
		fmt.Fprintf(w, "%d report-channel lines could not be trusted:\n", n)
		for _, c := range t.Corrupt[:min(n, 5)] {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	if o.Class != ClassPassed && o.Class != ClassFailed && len(o.ConsoleTail) > 0 {
		fmt.Fprintf(w, "last %d console lines:\n", len(o.ConsoleTail))
		for _, l := range o.ConsoleTail {
			fmt.Fprintf(w, "  | %s\n", l)
		}
	}
	if o.Class == ClassInfra && strings.TrimSpace(o.QEMUOutput) != "" {
		fmt.Fprintln(w, "QEMU said:")
		writeIndented(w, o.QEMUOutput)
	}
	fmt.Fprintf(w, "verdict: %s (exit %d): %s\n", o.Class, o.ExitCode, o.Detail)
}

func writeResults(w io.Writer, results map[string]*report.SuiteResult) {
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	width := len("suite")
	for _, n := range names {
		width = max(width, len(n))
	}
	fmt.Fprintf(w, "%-*s  passed  failed  skipped    time\n", width, "suite")
	for _, n := range names {
		s := results[n]
		d := time.Duration(s.DurationMS) * time.Millisecond
		fmt.Fprintf(w, "%-*s  %6d  %6d  %7d  %6v\n", width, n, s.Passed, s.Failed, s.Skipped, d.Round(100*time.Millisecond))
	}
	for _, status := range []string{report.Fail, report.Skip} {
		for _, n := range names {
			for _, c := range results[n].Cases {
				if c.Status == status {
					fmt.Fprintf(w, "%s %s/%s: %s\n", strings.ToUpper(status), n, c.Name, c.Message)
				}
			}
		}
	}
}

func writeMetrics(w io.Writer, m map[string]float64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "metrics:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%g\n", k, m[k])
	}
	tw.Flush()
}

// fromEvents rebuilds per-suite results from case events, for a run whose
// report never arrived.
func fromEvents(events []report.Event) map[string]*report.SuiteResult {
	results := map[string]*report.SuiteResult{}
	for _, e := range events {
		k := report.Key(e.Suite)
		s := results[k]
		if s == nil {
			s = &report.SuiteResult{}
			results[k] = s
		}
		s.Add(report.Case{Name: e.Case, Status: e.Status, DurationMS: e.DurationMS, Message: e.Message})
		s.DurationMS += e.DurationMS
	}
	return results
}

func writeIndented(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}
