// Command textpatch is a harness guest that makes the kernel rewrite its
// own code while another vCPU runs it: it toggles the sched_schedstats
// static key, whose patch sites lie in the scheduler, while two threads
// call sched_yield without pause. Under a QEMU whose multi-threaded TCG
// mishandles code changed by another vCPU the guest hangs at the first
// flip; otherwise it reports how many flips it made and powers off.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/suites/report"
	"yakimg/vm/testdata/guests/guestlib"
)

const (
	flips   = 200
	control = "/proc/sys/kernel/sched_schedstats"
)

func main() {
	guestlib.Setup()
	// The harness initramfs holds only /dev and /init; the root is a
	// writable tmpfs.
	if err := os.MkdirAll("/proc", 0o555); err != nil {
		guestlib.Fatal(err)
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		guestlib.Fatal(fmt.Errorf("mount /proc: %w", err))
	}
	runtime.GOMAXPROCS(3)
	for range 2 {
		go func() {
			runtime.LockOSThread()
			for {
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
		}()
	}
	guestlib.Say("textpatch: %d CPUs, toggling %s %d times", runtime.NumCPU(), control, flips)
	start := time.Now()
	status, message := report.Pass, ""
	for i := range flips {
		for _, v := range []string{"1", "0"} {
			if err := os.WriteFile(control, []byte(v), 0); err != nil {
				status, message = report.Fail, fmt.Sprintf("flip %d: %v", i, err)
				break
			}
		}
		if status != report.Pass {
			break
		}
	}
	took := time.Since(start)
	guestlib.Say("textpatch: done in %v", took)
	ch := guestlib.Channel()
	w := report.NewWriter(ch)
	if err := w.Hello(report.Hello{Runner: "harness-textpatch", ImageDigest: "sha256:harness", Suites: []string{"smoke"}}); err != nil {
		guestlib.Fatal(err)
	}
	c := report.Case{Name: "static-key-flips", Status: status, Message: message, DurationMS: took.Milliseconds()}
	if err := w.Event(report.Event{Suite: "smoke", Case: c.Name, Status: c.Status, DurationMS: c.DurationMS, Message: c.Message}); err != nil {
		guestlib.Fatal(err)
	}
	suite := &report.SuiteResult{DurationMS: took.Milliseconds()}
	suite.Add(c)
	r := &report.Report{
		YakirosVersion: "harness",
		TestRunID:      "harness-textpatch",
		VMConfig:       report.VMConfig{RAMMB: 256, CPUs: runtime.NumCPU(), OS: "harness guest", Kernel: guestlib.Uname()},
		Image:          report.Image{Digest: "sha256:harness"},
		TestResults:    map[string]*report.SuiteResult{"smoke": suite},
		PerformanceMetrics: map[string]float64{
			"static_key_flips_per_s": float64(2*flips) / took.Seconds(),
		},
	}
	if err := w.Report(r); err != nil {
		guestlib.Fatal(err)
	}
	guestlib.Drain(ch)
	guestlib.PowerOff()
}
