package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"yakimg/rootfs"
	"yakimg/suites"
	"yakimg/suites/report"
	"yakimg/vm"

	"yakimg/internal/atomicfile"
)

const bootDescription = `Boots the image in QEMU, runs the selected suites at first boot, reads the report from
the guest's second serial port and prints a summary. The disk image is never modified
(snapshot mode). The console log is saved as console.log next to the artifacts.
FILE may instead be an archive written by 'yakimg archive': it is verified, unpacked into a
temporary directory that is removed afterwards, and its console log is saved as
FILE.console.log next to it.

Exit codes: 0 all passed, 1 a test failed, 2 usage or input error, 3 guest kernel panic,
4 timeout, 5 infrastructure error (QEMU missing or crashed), 6 report missing or corrupt.
Suites: ` // completed with the suite list at run time

func runBoot(ctx context.Context, args []string, std Stdio) int {
	fs := newFlags("boot", "[DIR|FILE] [--suite NAME]... [--timeout D] [--json FILE] [--accel auto|tcg|kvm]",
		bootDescription+strings.Join(suites.Names(), ", ")+" (default: all).",
		"yakimg boot out --suite smoke --timeout 5m --json report.json", std)
	var suiteNames multiFlag
	fs.Var(&suiteNames, "suite", "run only suite `NAME` (repeatable, or a comma list)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after `D` and exit 4")
	jsonOut := fs.String("json", "", "write the report (with the outcome) as JSON to `FILE`")
	accel := fs.String("accel", "auto", "QEMU accelerator: auto (probe KVM once, else TCG), tcg or kvm")
	tcgThreads := fs.String("tcg-threads", vm.TCGThreadsSingle, "host threads for TCG's vCPUs: single (they take turns) or multi (one each: faster, but the guest may hang, see docs/VM-TESTING.md)")
	appendArgs := fs.String("append", "", "extra kernel command line `ARGS`")
	cache := fs.String("cache", rootfs.DefaultCacheDir(), "`DIR` where the accelerator probe verdict is remembered")
	if code := parse(fs, args, std); code >= 0 {
		return code
	}
	if fs.NArg() > 1 {
		return fail(std, "boot", exitUsage, fmt.Errorf("one image directory expected, got %d arguments", fs.NArg()))
	}
	dir := "out"
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	for _, s := range suiteNames {
		if !slices.Contains(suites.Names(), s) {
			return fail(std, "boot", exitUsage, fmt.Errorf("unknown suite %q; known suites: %s", s, strings.Join(suites.Names(), ", ")))
		}
	}
	if *timeout <= 0 {
		return fail(std, "boot", exitUsage, fmt.Errorf("--timeout must be positive"))
	}
	switch *accel {
	case "auto", "tcg", "kvm":
	default:
		return fail(std, "boot", exitUsage, fmt.Errorf("--accel %q: want auto, tcg or kvm", *accel))
	}
	switch *tcgThreads {
	case vm.TCGThreadsSingle, vm.TCGThreadsMulti:
	default:
		return fail(std, "boot", exitUsage, fmt.Errorf("--tcg-threads %q: want single or multi", *tcgThreads))
	}
	shown, consoleLog := dir, ""
	if fi, err := os.Stat(dir); err == nil && fi.Mode().IsRegular() {
		tmp, err := extractArchive(dir)
		if err != nil {
			return fail(std, "boot", exitUsage, err)
		}
		defer os.RemoveAll(tmp)
		// Written straight beside the archive: it must outlive the
		// temporary directory, and needs no copying out.
		if consoleLog, err = filepath.Abs(dir + ".console.log"); err != nil {
			return fail(std, "boot", exitUsage, err)
		}
		dir = tmp
	}
	spec, err := vm.LoadBootSpec(dir)
	if err != nil {
		return fail(std, "boot", exitUsage, fmt.Errorf("%w (build an image with 'yakimg build -o %s')", err, dir))
	}
	cfg, err := spec.Config(dir)
	if err != nil {
		return fail(std, "boot", exitUsage, err)
	}
	for _, f := range []string{cfg.Kernel, cfg.Initrd, cfg.Disk} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fail(std, "boot", exitUsage, fmt.Errorf("image in %s is incomplete: %w", dir, err))
		}
	}
	if consoleLog == "" {
		if consoleLog, err = filepath.Abs(filepath.Join(dir, "console.log")); err != nil {
			return fail(std, "boot", exitUsage, err)
		}
	}

	cmdline := []string{cfg.Append}
	if len(suiteNames) > 0 {
		cmdline = append(cmdline, "yakimg.suites="+strings.Join(suiteNames, ","))
	}
	// The guest's watchdog fires a little before the host gives up, so a
	// hung guest still sends its diagnostics.
	cmdline = append(cmdline, fmt.Sprintf("yakimg.deadline=%d", int((*timeout*85/100).Seconds())))
	if *appendArgs != "" {
		cmdline = append(cmdline, *appendArgs)
	}
	cfg.Append = strings.Join(cmdline, " ")
	cfg.Accel, cfg.TCGThreads, cfg.Timeout = *accel, *tcgThreads, *timeout
	cfg.ConsoleLog, cfg.CacheDir = consoleLog, *cache
	cfg.Stderr = std.Stderr
	cfg.OnFrame = func(kind string, f report.Frame) { printFrame(std, kind, f) }
	fmt.Fprintf(std.Stderr, "yakimg boot: %s (console log: %s)\n", shown, cfg.ConsoleLog)
	outcome, err := vm.Run(ctx, cfg)
	if err != nil {
		return fail(std, "boot", exitUsage, err)
	}
	outcome.Summary(std.Stdout)
	if *jsonOut != "" {
		if err := writeJSONReport(*jsonOut, outcome, cfg.ConsoleLog); err != nil {
			fmt.Fprintf(std.Stderr, "yakimg boot: %v\n", err)
			if outcome.ExitCode == vm.ExitPass {
				return exitUsage
			}
		}
	}
	return outcome.ExitCode
}

// printFrame shows the guest's progress as it happens.
func printFrame(std Stdio, kind string, f report.Frame) {
	switch kind {
	case report.KindHello:
		var h report.Hello
		if json.Unmarshal(f.Payload, &h) == nil {
			resumed := ""
			if h.Resumed {
				resumed = " (the run resumed after a kexec)"
			}
			fmt.Fprintf(std.Stderr, "guest: runner %s, image %s, suites %s%s\n", h.Runner, h.ImageDigest, strings.Join(h.Suites, ","), resumed)
		}
	case report.KindEvent:
		var e report.Event
		if json.Unmarshal(f.Payload, &e) == nil {
			line := fmt.Sprintf("  %-4s %s/%s (%d ms)", strings.ToUpper(e.Status), e.Suite, e.Case, e.DurationMS)
			if e.Message != "" && e.Status != report.Pass {
				line += ": " + e.Message
			}
			fmt.Fprintln(std.Stderr, line)
		}
	case report.KindSentinel:
		var s report.Sentinel
		if json.Unmarshal(f.Payload, &s) == nil {
			fmt.Fprintf(std.Stderr, "guest: watchdog fired after %ds: %s\n", s.UptimeS, s.Reason)
		}
	}
}

// jsonReport is what --json writes: the report of DESIGN §6 with the host's
// verdict beside it.
type jsonReport struct {
	*report.Report
	Outcome jsonOutcome `json:"outcome"`
}

type jsonOutcome struct {
	ExitCode   int    `json:"exit_code"`
	Class      string `json:"class"`
	Detail     string `json:"detail"`
	Accel      string `json:"accel"`
	TCGThreads string `json:"tcg_threads,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	ConsoleLog string `json:"console_log"`
}

func writeJSONReport(path string, o *vm.Outcome, consoleLog string) error {
	out := jsonReport{Outcome: jsonOutcome{
		ExitCode: o.ExitCode, Class: o.Class, Detail: o.Detail, Accel: o.Accel, TCGThreads: o.TCGThreads,
		DurationMS: o.Duration.Milliseconds(), ConsoleLog: consoleLog,
	}}
	if o.Transcript != nil && o.Transcript.Report != nil {
		r := *o.Transcript.Report
		r.VMConfig.Accel, r.VMConfig.TCGThreads = o.Accel, o.TCGThreads
		out.Report = &r
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}
