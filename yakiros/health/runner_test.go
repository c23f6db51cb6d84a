package health

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withRunner returns Options whose command checks run in a runner process:
// this test binary, started as RunnerName (see TestMain).
func withRunner(t *testing.T, opts Options) Options {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts.Runner = self
	opts.Log = t.Logf
	return opts
}

func runnerPid(m *Manager) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.remote == nil {
		return 0
	}
	return m.remote.pid
}

// With a runner, the checks are the runner's children, not this process's;
// results keep their verdicts, reasons and order, and the output still goes
// to the file Options.Output opened here.
func TestRunnerRunsTheChecks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	m, r := setup(t, withRunner(t, Options{Output: func(name string) (*os.File, error) {
		return os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}}))
	// Passes twice, then exits 3; each run writes its parent's pid.
	cmd := fmt.Sprintf(`echo "parent $PPID"; n=0; [ -e %[1]s/n ] && read n < %[1]s/n; echo $((n+1)) > %[1]s/n; [ $n -lt 2 ] || exit 3`, dir)
	if err := m.Watch("db", 42, command(cmd, 150*time.Millisecond, time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := results(t, m, 3)
	m.Cancel("db")
	for i, want := range []bool{true, true, false} {
		res := got[i]
		if res.Name != "db" || res.Pid != 42 || res.OK != want || res.End.Before(res.Start) {
			t.Errorf("result %d = %+v; want db, pid 42, ok %v", i+1, res, want)
		}
	}
	if want := "exited with status 3"; got[2].Reason != want {
		t.Errorf("reason = %q; want %q", got[2].Reason, want)
	}
	runner := runnerPid(m)
	if runner == 0 || runner == os.Getpid() {
		t.Fatalf("runner pid %d", runner)
	}
	data, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 3 {
		t.Fatalf("output = %q; want a line per check", data)
	}
	for _, l := range lines {
		if l != fmt.Sprintf("parent %d", runner) {
			t.Errorf("output line %q; want every check forked by the runner, pid %d", l, runner)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.exits) != 0 {
		t.Errorf("this process reaped %v; the runner reaps the checks", r.exits)
	}
}

// A hung check is killed by the runner at its timeout, with what it left
// in its process group, and counts as a failure.
func TestRunnerKillsHungChecks(t *testing.T) {
	m, _ := setup(t, withRunner(t, Options{}))
	dir := t.TempDir()
	cmd := fmt.Sprintf(`if [ -e %[1]s/sh ]; then exit 0; fi; echo $$ > %[1]s/sh; sleep 60 & echo $! > %[1]s/sleep; wait`, dir)
	timeout := 300 * time.Millisecond
	if err := m.Watch("db", 42, command(cmd, 100*time.Millisecond, timeout)); err != nil {
		t.Fatal(err)
	}
	got := results(t, m, 2)
	if want := "timed out after 300ms, killed"; got[0].OK || got[0].Reason != want {
		t.Errorf("first result = %+v; want a failure %q", got[0], want)
	}
	if took := got[0].End.Sub(got[0].Start); took < timeout {
		t.Errorf("the hanging check was given up after %v; want at least the timeout %v", took, timeout)
	}
	if !got[1].OK {
		t.Errorf("second result = %+v; want a pass", got[1])
	}
	for _, f := range []string{"sh", "sleep"} {
		pid := readPid(t, filepath.Join(dir, f))
		waitFor(t, fmt.Sprintf("the check's %s (pid %d) to be gone", f, pid), func() bool {
			return syscall.Kill(pid, 0) == syscall.ESRCH
		})
	}
}

// Cancel reaches the runner: the running check is killed and no result of
// the cancelled watch arrives; a replacing watch's results do.
func TestRunnerCancelAndReplace(t *testing.T) {
	m, _ := setup(t, withRunner(t, Options{}))
	dir := t.TempDir()
	if err := m.Watch("db", 42, command(fmt.Sprintf(`echo $$ > %s/sh; exec sleep 60`, dir), time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	sh := readPid(t, dir+"/sh")
	m.Cancel("db")
	waitFor(t, "the cancelled check to be killed", func() bool { return syscall.Kill(sh, 0) == syscall.ESRCH })
	if err := m.Watch("db", 43, command("exit 1", time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := results(t, m, 1); got[0].Pid != 43 || got[0].OK {
		t.Errorf("results after replacing the watch = %+v; want only the failure of pid 43", got)
	}
}

// A runner that dies is replaced, and the watches go on with the new one.
func TestRunnerIsReplaced(t *testing.T) {
	m, r := setup(t, withRunner(t, Options{}))
	if err := m.Watch("db", 42, command("exit 0", 100*time.Millisecond, time.Minute)); err != nil {
		t.Fatal(err)
	}
	results(t, m, 1)
	first := runnerPid(m)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := r.exit(t, first); !e.claimed {
		t.Errorf("the runner's exit %v was not claimed by Exited", e.Exit)
	}
	waitFor(t, "another runner", func() bool { p := runnerPid(m); return p != 0 && p != first })
	m.Take()
	if got := results(t, m, 2); !got[0].OK || !got[1].OK {
		t.Errorf("results with the new runner = %+v; want passes", got)
	}
}

// Closing the Manager ends the runner.
func TestRunnerEndsWithTheManager(t *testing.T) {
	r := startReaper(t)
	m := NewManager(withRunner(t, Options{}))
	r.m.Store(m)
	if err := m.Watch("db", 42, command("exit 0", time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	results(t, m, 1)
	pid := runnerPid(m)
	m.Close()
	if e := r.exit(t, pid); !e.Status.Exited() || e.Status.ExitStatus() != 0 {
		t.Errorf("runner after Close: %v; want exit status 0", e.Exit)
	}
}
