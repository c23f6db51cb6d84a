package readiness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/config"
)

// pids reads the pids a check appended to path, one a line.
func pids(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, n)
	}
	return out
}

// gone reports whether pid has ended (a zombie counts: its parent, not we,
// would reap it).
func gone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return strings.HasPrefix(rest, "Z")
}

func TestCommandReadyOnThirdTry(t *testing.T) {
	m, _, _ := setup(t)
	count := t.TempDir() + "/count"
	// Builtins only: no fork inside, so a run is never killed half-way.
	cmd := fmt.Sprintf(`n=0; [ -e %[1]s ] && read n < %[1]s; n=$((n+1)); echo $n > %[1]s; [ $n -ge 3 ]`, count)
	m.Watch("db", 9, config.Readiness{Method: config.ReadyCommand, Command: cmd,
		Interval: 100 * time.Millisecond, Timeout: time.Minute})
	if ev, _ := outcome(t, m, "db"); !ev.Ready || ev.Pid != 9 {
		t.Fatalf("outcome = %+v; want ready for pid 9", ev)
	}
	if data, _ := os.ReadFile(count); string(data) != "3\n" {
		t.Errorf("check ran %q times; want 3 (none after success)", data)
	}
}

func TestCommandHangingIsKilledAtTimeout(t *testing.T) {
	m, r, _ := setup(t)
	dir := t.TempDir()
	// The check's shell waits for a background sleep: both must die.
	cmd := fmt.Sprintf(`echo $$ > %[1]s/sh; sleep 60 & echo $! > %[1]s/sleep; wait`, dir)
	m.Watch("db", 9, config.Readiness{Method: config.ReadyCommand, Command: cmd,
		Interval: time.Hour, Timeout: 2 * time.Second})
	ev, _ := outcome(t, m, "db")
	if !errors.Is(ev.Err, ErrTimeout) || !strings.HasPrefix(ev.Err.Error(), "readiness timeout after 2s (last check: killed after ") {
		t.Fatalf("outcome = %+v; want readiness timeout after 2s (last check: killed after ...)", ev)
	}
	sh, sleep := pids(t, dir+"/sh"), pids(t, dir+"/sleep")
	if len(sh) != 1 || len(sleep) != 1 {
		t.Fatalf("check wrote sh pids %v, sleep pids %v; want one each", sh, sleep)
	}
	if e := r.exit(t, sh[0]); !e.claimed || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("check shell: %v (claimed %v); want killed by SIGKILL, claimed by Exited", e.Exit, e.claimed)
	}
	waitFor(t, "the check's background sleep to die", func() bool { return gone(sleep[0]) })
}

func TestCommandEachRunKilledAtInterval(t *testing.T) {
	m, r, _ := setup(t)
	runs := t.TempDir() + "/runs"
	m.Watch("db", 9, config.Readiness{Method: config.ReadyCommand,
		Command: "echo $$ >> " + runs + "; exec sleep 60", Interval: 200 * time.Millisecond})
	waitFor(t, "three check runs", func() bool { return len(pids(t, runs)) >= 3 })
	m.Cancel("db")
	for _, pid := range pids(t, runs)[:2] {
		if e := r.exit(t, pid); !e.claimed || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
			t.Errorf("check run pid %d: %v (claimed %v); want killed by SIGKILL, claimed by Exited", pid, e.Exit, e.claimed)
		}
	}
}

func TestCheckRunsCommandNow(t *testing.T) {
	m, _, _ := setup(t)
	dir := t.TempDir()
	cmd := fmt.Sprintf("echo $$ >> %[1]s/runs; [ -e %[1]s/up ]", dir)
	m.Watch("db", 9, config.Readiness{Method: config.ReadyCommand, Command: cmd, Interval: time.Hour})
	waitFor(t, "the first check run", func() bool { return len(pids(t, dir+"/runs")) == 1 })
	if err := os.WriteFile(dir+"/up", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The next run is an hour away: only Check can make it ready now.
	waitFor(t, "Check to accept (the first run to have failed)", func() bool { return m.Check("db") })
	if ev, _ := outcome(t, m, "db"); !ev.Ready {
		t.Errorf("outcome = %+v; want ready", ev)
	}
	if n := len(pids(t, dir+"/runs")); n != 2 {
		t.Errorf("check ran %d times; want 2", n)
	}
}

func TestCommandOutputGoesToLog(t *testing.T) {
	r := startReaper(t)
	logDir := t.TempDir()
	m, err := NewManager(Options{Output: func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(logDir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	r.m.Store(m)
	defer m.Close()
	m.Watch("db", 9, config.Readiness{Method: config.ReadyCommand, Command: "echo probing; echo oops >&2; exit 4",
		Interval: time.Hour, Timeout: 2 * time.Second})
	ev, _ := outcome(t, m, "db")
	if ev.Err == nil || ev.Err.Error() != "readiness timeout after 2s (last check: exited with status 4)" {
		t.Errorf("outcome = %+v; want readiness timeout after 2s (last check: exited with status 4)", ev)
	}
	data, err := os.ReadFile(logDir + "/db.log")
	if err != nil || string(data) != "probing\noops\n" {
		t.Errorf("db.log = %q, %v; want the check's stdout and stderr", data, err)
	}
}
