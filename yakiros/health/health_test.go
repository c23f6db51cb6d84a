package health

// These tests reap with wait4(-1), which collects any child of the test
// process, as PID 1's loop does; so none of them may run in parallel.

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
	"yakimg/yakiros/supervise"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == RunnerName { // runner_test.go starts this binary as the runner
		os.Exit(RunnerMain())
	}
	// Orphans of a killed check (its background children) come back to
	// this process, as they would to PID 1, so the tests can tell that
	// they died, and reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// wait is how long a test waits for something that should happen soon.
const wait = 20 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reaped is an exit the reaper collected; claimed says Exited took it.
type reaped struct {
	supervise.Exit
	claimed bool
}

// reaper does what PID 1's loop does: reap every child on SIGCHLD and offer
// each exit to the Manager.
type reaper struct {
	m     atomic.Pointer[Manager]
	mu    sync.Mutex
	exits map[int]reaped
}

func startReaper(t testing.TB) *reaper {
	r := &reaper{exits: map[int]reaped{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-sigs:
			}
			exits, _, err := supervise.Reap()
			if err != nil {
				t.Errorf("Reap: %v", err)
			}
			for _, e := range exits {
				claimed := false
				if m := r.m.Load(); m != nil {
					claimed = m.Exited(e)
				}
				r.mu.Lock()
				r.exits[e.Pid] = reaped{e, claimed}
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sigs)
		close(stop)
		<-done
	})
	return r
}

// exit waits until pid was reaped.
func (r *reaper) exit(t *testing.T, pid int) reaped {
	t.Helper()
	var got reaped
	waitFor(t, fmt.Sprintf("pid %d to be reaped", pid), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		got, ok = r.exits[pid]
		return ok
	})
	return got
}

// setup starts a reaper and a Manager, closed at the end of the test.
func setup(t testing.TB, opts Options) (*Manager, *reaper) {
	t.Helper()
	r := startReaper(t)
	m := NewManager(opts)
	r.m.Store(m)
	t.Cleanup(m.Close)
	return m, r
}

// results waits until n results have arrived and returns them.
func results(t testing.TB, m *Manager, n int) []Result {
	t.Helper()
	var got []Result
	timeout := time.After(wait)
	for len(got) < n {
		select {
		case <-m.Pending():
		case <-timeout:
			t.Fatalf("got %d results, want %d: %+v", len(got), n, got)
		}
		got = append(got, m.Take()...)
	}
	return got
}

// readPid reads the pid a check wrote to path, waiting for it.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+path, func() bool {
		data, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	return pid
}

func command(cmd string, interval, timeout time.Duration) config.Health {
	return config.Health{Method: config.HealthCommand, Command: cmd, Interval: interval, Timeout: timeout,
		FailThreshold: 3, RestartThreshold: 5}
}

// A command check passes on exit 0 and fails on anything else, saying how
// the command ended; each check is a run of its own, the checks at least
// half an interval apart (see TestNext), and the check processes are
// claimed by Exited.
func TestCommandResults(t *testing.T) {
	m, r := setup(t, Options{})
	dir := t.TempDir()
	// Passes twice, then exits 3 from then on.
	cmd := fmt.Sprintf(`echo $$ >> %[1]s/runs; n=0; [ -e %[1]s/n ] && read n < %[1]s/n; echo $((n+1)) > %[1]s/n; [ $n -lt 2 ] || exit 3`, dir)
	interval := 150 * time.Millisecond
	if err := m.Watch("db", 42, command(cmd, interval, time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := results(t, m, 4)
	m.Cancel("db")
	want := []struct {
		ok     bool
		reason string
	}{{true, ""}, {true, ""}, {false, "exited with status 3"}, {false, "exited with status 3"}}
	for i, res := range got[:4] {
		if res.Name != "db" || res.Pid != 42 || res.OK != want[i].ok || res.Reason != want[i].reason || res.End.Before(res.Start) {
			t.Errorf("result %d = %+v; want db, pid 42, ok %v, reason %q", i+1, res, want[i].ok, want[i].reason)
		}
		if i > 0 && res.Start.Sub(got[i-1].Start) < interval/2 {
			t.Errorf("check %d started %v after check %d; want at least half the interval %v", i+1, res.Start.Sub(got[i-1].Start), i, interval)
		}
	}
	data, err := os.ReadFile(dir + "/runs")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(data))[:4] {
		pid, _ := strconv.Atoi(f)
		if e := r.exit(t, pid); !e.claimed {
			t.Errorf("check pid %d (%v) was not claimed by Exited", pid, e.Exit)
		}
	}
}

// A check that hangs is killed with its whole process group at the
// timeout, not before, and counts as a failure; checks go on afterwards.
func TestCommandHangingIsKilledAtTimeout(t *testing.T) {
	m, r := setup(t, Options{})
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
		t.Errorf("second result = %+v; want a pass (the check runs again after a timeout)", got[1])
	}
	sh, sleep := readPid(t, dir+"/sh"), readPid(t, dir+"/sleep")
	if e := r.exit(t, sh); !e.claimed || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("check shell: %v (claimed %v); want killed by SIGKILL, claimed by Exited", e.Exit, e.claimed)
	}
	if e := r.exit(t, sleep); e.claimed || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("the check's background sleep: %v (claimed %v); want killed by SIGKILL with its group, not claimed", e.Exit, e.claimed)
	}
}

// What a passing check leaves running in its process group is killed.
func TestCommandLeavesNothingBehind(t *testing.T) {
	m, r := setup(t, Options{})
	dir := t.TempDir()
	if err := m.Watch("db", 42, command(fmt.Sprintf(`sleep 60 & echo $! > %s/sleep`, dir), time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := results(t, m, 1); !got[0].OK {
		t.Fatalf("result = %+v; want a pass", got[0])
	}
	if e := r.exit(t, readPid(t, dir+"/sleep")); !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("left-over sleep: %v; want killed by SIGKILL", e.Exit)
	}
}

// The check's output goes where Options.Output says.
func TestCommandOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	m, _ := setup(t, Options{Output: func(name string) (*os.File, error) {
		return os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}})
	if err := m.Watch("db", 42, command(`echo "checking $0"; echo oops >&2; exit 1`, time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	results(t, m, 1)
	if data, _ := os.ReadFile(out); string(data) != "checking /bin/sh\noops\n" {
		t.Errorf("output = %q; want the check's stdout and stderr", data)
	}
}

// Cancel kills a running check and drops results not yet taken; Watch
// replaces an earlier watch of the same name the same way.
func TestCancelAndReplace(t *testing.T) {
	m, r := setup(t, Options{})
	dir := t.TempDir()
	if err := m.Watch("db", 42, command(fmt.Sprintf(`echo $$ > %s/sh; exec sleep 60`, dir), time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	sh := readPid(t, dir+"/sh")
	m.Cancel("db")
	if e := r.exit(t, sh); !e.claimed || !e.Status.Signaled() {
		t.Errorf("cancelled check: %v (claimed %v); want killed, claimed", e.Exit, e.claimed)
	}
	if err := m.Watch("db", 42, command("exit 0", time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a result to be queued", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.queue) == 1
	})
	if err := m.Watch("db", 43, command("exit 1", time.Hour, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := results(t, m, 1); got[0].Pid != 43 || got[0].OK {
		t.Errorf("results after replacing the watch = %+v; want only the failure of pid 43", got)
	}
	m.Cancel("db")
	if got := m.Take(); len(got) != 0 {
		t.Errorf("Take after Cancel = %+v; want nothing", got)
	}
}

func TestWatchRefusesWhatCannotBeChecked(t *testing.T) {
	m, _ := setup(t, Options{})
	for _, cfg := range []config.Health{
		{Method: config.HealthNone, Interval: time.Second, Timeout: time.Second},
		{Method: "", Interval: time.Second, Timeout: time.Second},
		{Method: config.HealthCommand, Command: "true", Timeout: time.Second},
		{Method: config.HealthFile, File: "/x", Interval: time.Second},
	} {
		if err := m.Watch("db", 42, cfg); err == nil {
			t.Errorf("Watch(%+v) = nil; want an error", cfg)
		}
	}
	m.Close()
	if err := m.Watch("db", 42, command("true", time.Second, time.Second)); err == nil {
		t.Errorf("Watch after Close = nil; want an error")
	}
}

// The file check reads the verdict of the file at each check.
func TestFileVerdicts(t *testing.T) {
	m, _ := setup(t, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "health")
	if err := m.Watch("web", 42, config.Health{Method: config.HealthFile, File: path,
		Interval: 50 * time.Millisecond, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		content string // "-" removes the file, "/" makes it a directory
		ok      bool
		reason  string
	}{
		{"-", false, path + " does not exist"},
		{"", true, ""},
		{"ok\n", true, ""},
		{"  ok  \nfail: the second line does not count\n", true, ""},
		{"fail\n", false, path + " says fail"},
		{"fail: disk full\n", false, "disk full"},
		{"fail:", false, path + " says fail"},
		{"healthy\n", false, path + ` says "healthy"; want ok or fail[:reason]`},
		{"failing\n", false, path + ` says "failing"; want ok or fail[:reason]`},
		{"/", false, "read " + path + ": is a directory"},
	} {
		os.RemoveAll(path)
		switch tc.content {
		case "-":
		case "/":
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m.Take()
		// The second result after the change was surely read after it.
		got := results(t, m, 2)[1]
		if got.OK != tc.ok || got.Reason != tc.reason {
			t.Errorf("file %q: result %+v; want ok %v, reason %q", tc.content, got, tc.ok, tc.reason)
		}
	}
}

// A read that blocks (here: opening a FIFO nobody writes) fails the check
// at the timeout; until it returns, checks fail at once without another
// read; once it returns, the file is read again.
func TestFileReadBlocked(t *testing.T) {
	m, _ := setup(t, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "health")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	timeout := 200 * time.Millisecond
	if err := m.Watch("web", 42, config.Health{Method: config.HealthFile, File: path,
		Interval: 50 * time.Millisecond, Timeout: timeout}); err != nil {
		t.Fatal(err)
	}
	got := results(t, m, 2)
	if want := fmt.Sprintf("reading %s timed out after 200ms", path); got[0].OK || got[0].Reason != want {
		t.Errorf("first result = %+v; want a failure %q", got[0], want)
	}
	if took := got[0].End.Sub(got[0].Start); took < timeout {
		t.Errorf("the blocked read was given up after %v; want at least %v", took, timeout)
	}
	if want := fmt.Sprintf("an earlier read of %s has still not returned", path); got[1].OK || got[1].Reason != want {
		t.Errorf("second result = %+v; want a failure %q", got[1], want)
	}
	// Unblock the read, and put a plain file in the FIFO's place.
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "new"), path+".ok"); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Rename(path+".ok", path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a passing check", func() bool {
		for _, r := range m.Take() {
			if r.OK {
				return true
			}
		}
		return false
	})
}

func notify(interval, timeout time.Duration) config.Health {
	return config.Health{Method: config.HealthNotify, Interval: interval, Timeout: timeout, FailThreshold: 3, RestartThreshold: 5}
}

// A notify check takes the latest report no earlier check took (reports
// sent before Watch count for the first check); without a new one within
// the timeout it fails; reports from another process do not count; a
// report arriving while a check waits decides it.
func TestNotifyReports(t *testing.T) {
	m, _ := setup(t, Options{})
	m.Report("api", 42, "HEALTH=fail:old")
	m.Report("api", 42, "HEALTH=ok")
	timeout := 200 * time.Millisecond
	if err := m.Watch("api", 42, notify(50*time.Millisecond, timeout)); err != nil {
		t.Fatal(err)
	}
	got := results(t, m, 2)
	if !got[0].OK {
		t.Errorf("first result = %+v; want the pass reported before Watch", got[0])
	}
	if want := "no health report within 200ms"; got[1].OK || got[1].Reason != want {
		t.Errorf("second result = %+v; want a failure %q", got[1], want)
	}
	if took := got[1].End.Sub(got[1].Start); took < timeout {
		t.Errorf("the check without a report gave up after %v; want at least %v", took, timeout)
	}

	m.Take()
	m.Report("api", 7, "HEALTH=ok")
	if got := results(t, m, 1)[0]; got.OK {
		t.Errorf("result after a report from another pid = %+v; want a failure", got)
	}

	m.Take()
	m.Report("api", 42, "HEALTH=fail: disk full")
	waitFor(t, "the reported failure", func() bool {
		for _, r := range m.Take() {
			if !r.OK && r.Reason == "disk full" {
				return true
			}
		}
		return false
	})
	m.Report("api", 42, "WATCHDOG=1")
	waitFor(t, "the reported keep-alive", func() bool {
		for _, r := range m.Take() {
			if r.OK {
				return true
			}
		}
		return false
	})
}

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		line   string
		ok     bool
		reason string
	}{
		{"HEALTH=ok", true, ""},
		{"WATCHDOG=1", true, ""},
		{"HEALTH=fail", false, "HEALTH=fail"},
		{"HEALTH=fail:", false, "HEALTH=fail:"},
		{"HEALTH=fail:disk full", false, "disk full"},
		{"HEALTH=fail: disk full ", false, "disk full"},
		{"WATCHDOG=trigger", false, "WATCHDOG=trigger"},
		{"HEALTH=OK", false, `unknown report "HEALTH=OK": want HEALTH=ok, HEALTH=fail[:reason], WATCHDOG=1 or WATCHDOG=trigger`},
		{"HEALTH=failed", false, `unknown report "HEALTH=failed": want HEALTH=ok, HEALTH=fail[:reason], WATCHDOG=1 or WATCHDOG=trigger`},
		{"WATCHDOG=0", false, `unknown report "WATCHDOG=0": want HEALTH=ok, HEALTH=fail[:reason], WATCHDOG=1 or WATCHDOG=trigger`},
		{"HEALTH=", false, `unknown report "HEALTH=": want HEALTH=ok, HEALTH=fail[:reason], WATCHDOG=1 or WATCHDOG=trigger`},
	} {
		if ok, reason := ParseReport(tc.line); ok != tc.ok || reason != tc.reason {
			t.Errorf("ParseReport(%q) = %v, %q; want %v, %q", tc.line, ok, reason, tc.ok, tc.reason)
		}
	}
}

// After its first check a watch checks on the grid of multiples of its
// interval since the Manager's epoch, at least half an interval after the
// previous start: watches of one interval check together.
func TestNext(t *testing.T) {
	m := NewManager(Options{})
	ms := time.Millisecond
	for _, tc := range []struct {
		start, interval, want time.Duration // since the epoch
	}{
		{0, 1000 * ms, 1000 * ms},
		{3 * ms, 1000 * ms, 1000 * ms},    // a late timer
		{499 * ms, 1000 * ms, 1000 * ms},  // a first check half an interval before the grid point
		{500 * ms, 1000 * ms, 1000 * ms},  // exactly half
		{501 * ms, 1000 * ms, 2000 * ms},  // less than half an interval before it: the one after
		{2000 * ms, 1000 * ms, 3000 * ms}, // on the grid: the next point
		{2999 * ms, 1000 * ms, 4000 * ms}, // a check that started very late
		{1234 * ms, 2000 * ms, 4000 * ms}, // intervals of 2s share every other point
		{7 * ms, 150 * ms, 150 * ms},
	} {
		if got := m.next(m.epoch.Add(tc.start), tc.interval).Sub(m.epoch); got != tc.want {
			t.Errorf("next(epoch+%v, %v) = epoch+%v; want epoch+%v", tc.start, tc.interval, got, tc.want)
		}
	}
}
