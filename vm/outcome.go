package vm

import (
	"fmt"
	"strings"
	"time"

	"yakimg/suites/report"
)

// Exit codes of `yakimg boot` (DESIGN §3). They are a stable interface:
// scripts and `yakimg bisect` rely on them.
const (
	ExitPass    = 0 // every case passed
	ExitFail    = 1 // a case failed
	ExitUsage   = 2 // usage or input error
	ExitPanic   = 3 // the guest kernel panicked
	ExitTimeout = 4 // the run or the guest's watchdog deadline passed
	ExitInfra   = 5 // QEMU missing or crashed, accelerator unusable
	ExitReport  = 6 // report missing or corrupt
)

// Outcome classes, one per way a boot can end.
const (
	ClassPassed        = "passed"
	ClassFailed        = "failed"
	ClassPanic         = "panic"
	ClassTimeout       = "timeout"
	ClassInfra         = "infra"
	ClassReportMissing = "report-missing"
	ClassReportCorrupt = "report-corrupt"
)

var classExit = map[string]int{
	ClassPassed:        ExitPass,
	ClassFailed:        ExitFail,
	ClassPanic:         ExitPanic,
	ClassTimeout:       ExitTimeout,
	ClassInfra:         ExitInfra,
	ClassReportMissing: ExitReport,
	ClassReportCorrupt: ExitReport,
}

// Outcome is what one boot came to.
type Outcome struct {
	ExitCode int
	Class    string
	Detail   string // one human line saying why
	Accel    string // the accelerator that ran
	// TCGThreads is "single" or "multi" when TCG ran more than one vCPU.
	TCGThreads string
	Duration   time.Duration
	// Transcript is everything decoded from the report channel, trusted or
	// not; Trusted says whether to believe it.
	Transcript  *report.Transcript
	ConsoleTail []string // last console lines, for the summary on failure
	QEMUOutput  string   // QEMU's own stdout and stderr (its last 4 KiB)
}

// Reasons for which the host kills QEMU.
const (
	killTimeout   = "timeout"     // Config.Timeout passed
	killPanic     = "panic"       // the kernel panicked and QEMU did not exit
	killDone      = "done"        // the report is in and the guest did not power off
	killInterrupt = "interrupted" // the caller's context ended
)

// observation is what the host saw of one QEMU run: the input of classify.
type observation struct {
	startErr    error  // QEMU could not be started
	missing     bool   // ... because the binary does not exist
	exitCode    int    // QEMU's exit status; -1 when it died by a signal
	signal      string // the signal QEMU died by, if any
	killed      string // why the host killed QEMU, if it did
	timeout     time.Duration
	panicLine   string // first console line with PanicMarker
	transcript  *report.Transcript
	qemuLastErr string // last line QEMU printed, for infra details
}

// classify decides an outcome. The order matters: a trusted report wins
// over everything the host saw afterwards, and a panic explains a missing
// report better than QEMU's exit status does.
func classify(o observation) (class, detail string) {
	t := o.transcript
	switch {
	case o.missing:
		return ClassInfra, fmt.Sprintf("QEMU not found (%v); install it with `apt-get install qemu-system-x86`", o.startErr)
	case o.startErr != nil:
		return ClassInfra, fmt.Sprintf("start QEMU: %v", o.startErr)
	case t.Trusted():
		class, detail = verdict(t.Report)
		// The report stands, but a guest that does not stop cleanly after
		// it is worth a word.
		switch {
		case o.panicLine != "":
			detail += "; afterwards the guest kernel panicked: " + o.panicLine
		case o.killed == killDone:
			detail += "; afterwards the guest did not power off"
		}
		return class, detail
	case o.panicLine != "":
		return ClassPanic, "guest kernel panic: " + o.panicLine
	case len(t.Corrupt) > 0:
		msg := fmt.Sprintf("report channel corrupt: %s", t.Corrupt[0])
		if n := len(t.Corrupt); n > 1 {
			msg += fmt.Sprintf(" (and %d more bad lines)", n-1)
		}
		return ClassReportCorrupt, msg
	case t.Report != nil:
		return ClassReportCorrupt, "report without a matching done frame (the guest stopped while writing it?)"
	case t.Sentinel != nil:
		return ClassTimeout, fmt.Sprintf("guest watchdog fired after %ds: %s", t.Sentinel.UptimeS, t.Sentinel.Reason)
	case o.killed == killTimeout:
		return ClassTimeout, fmt.Sprintf("no report within %v; QEMU killed", o.timeout)
	case o.killed == killInterrupt:
		return ClassInfra, "interrupted before a report arrived; QEMU killed"
	case o.signal != "":
		return ClassInfra, fmt.Sprintf("QEMU died by signal %s without a report%s", o.signal, suffix(o.qemuLastErr))
	case o.exitCode != 0:
		return ClassInfra, fmt.Sprintf("QEMU exited with status %d without a report%s", o.exitCode, suffix(o.qemuLastErr))
	default:
		return ClassReportMissing, "the guest stopped without sending a report" + progress(t)
	}
}

// verdict judges a trusted report.
func verdict(r *report.Report) (class, detail string) {
	passed, failed, skipped := r.Totals()
	total := passed + failed + skipped
	if failed == 0 {
		return ClassPassed, fmt.Sprintf("%d passed, %d skipped of %d cases in %d suites", passed, skipped, total, len(r.TestResults))
	}
	for _, name := range r.SuiteNames() {
		for _, c := range r.TestResults[name].Cases {
			if c.Status == report.Fail {
				return ClassFailed, fmt.Sprintf("%d of %d cases failed; first: %s/%s: %s", failed, total, name, c.Name, c.Message)
			}
		}
	}
	// Counters say failed but no case does: still a failure.
	return ClassFailed, fmt.Sprintf("%d of %d cases failed", failed, total)
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// progress says how far the guest got, when it said anything at all.
func progress(t *report.Transcript) string {
	switch {
	case len(t.Events) > 0:
		return fmt.Sprintf(" (%d case events arrived, then nothing)", len(t.Events))
	case t.Hellos > 1:
		return fmt.Sprintf(" (it said hello %d times, after each kexec, then nothing)", t.Hellos)
	case t.Hello != nil:
		return " (it said hello, then nothing)"
	default:
		return ""
	}
}

// lastLine is the last non-blank line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
