package health

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkCommandChecks runs the command checks of 20 watches and reports
// the CPU time this process spends per check (forking, reaping, timers,
// results; the checks' own time is their own), the cost PID 1 pays: with
// the checks forked here, and with a runner process forking them
// (runner.go), which leaves this process the runner's messages only:
//
//	go test -run '^$' -bench CommandChecks ./yakiros/health
func BenchmarkCommandChecks(b *testing.B) {
	b.Run("forked-here", func(b *testing.B) { benchCommandChecks(b, Options{}) })
	b.Run("runner", func(b *testing.B) {
		self, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		benchCommandChecks(b, Options{Runner: self})
	})
}

func benchCommandChecks(b *testing.B, opts Options) {
	m, _ := setup(b, opts)
	const watches = 20
	for i := range watches {
		if err := m.Watch(fmt.Sprintf("svc-%d", i), 100+i, command("exit 0", 20*time.Millisecond, time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	results(b, m, watches)
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &before); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := len(results(b, m, b.N))
	b.StopTimer()
	if err := unix.Getrusage(unix.RUSAGE_SELF, &after); err != nil {
		b.Fatal(err)
	}
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/check")
}
