package readiness

// These tests reap with wait4(-1), which collects any child of the test
// process, as PID 1's loop does; so none of them may run in parallel.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/supervise"
)

// helperEnv makes the test binary a helper process instead of running tests:
// "notify" sends $helperMessage to $NOTIFY_SOCKET and stays alive (the
// sender must exist while its message is attributed) until killed.
const (
	helperEnv     = "READINESS_TEST_HELPER"
	helperMessage = "READINESS_TEST_MESSAGE"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "notify":
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
		if err == nil {
			_, err = c.Write([]byte(os.Getenv(helperMessage)))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "notify helper:", err)
			os.Exit(1)
		}
		time.Sleep(time.Hour)
	}
	os.Exit(2)
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

func startReaper(t *testing.T) *reaper {
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

// logs collects the Manager's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) wait(t *testing.T, substr string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a log line containing %q", substr), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, line := range l.lines {
			if strings.Contains(line, substr) {
				return true
			}
		}
		return false
	})
}

// setup starts a reaper and a Manager with a notify socket in a temporary
// directory, closed at the end of the test.
func setup(t *testing.T) (*Manager, *reaper, *logs) {
	t.Helper()
	r := startReaper(t)
	l := &logs{}
	m, err := NewManager(Options{NotifySocket: t.TempDir() + "/notify.sock", Logf: l.logf})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	r.m.Store(m)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m, r, l
}

// outcome waits for the Ready or Err event of name and returns it with
// every event Take returned meanwhile.
func outcome(t *testing.T, m *Manager, name string) (Event, []Event) {
	t.Helper()
	var seen []Event
	timeout := time.After(wait)
	for {
		select {
		case <-m.Pending():
		case <-timeout:
			t.Fatalf("no outcome for %s; events %+v", name, seen)
		}
		for _, ev := range m.Take() {
			seen = append(seen, ev)
			if ev.Name == name && (ev.Ready || ev.Err != nil) {
				return ev, seen
			}
		}
	}
}

// spawn starts argv as a session leader with extra environment, killed
// (with its whole group) at the end of the test.
func spawn(t *testing.T, argv []string, env ...string) int {
	t.Helper()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   append(os.Environ(), env...),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	return pid
}

func TestNoneIsReadyAtOnce(t *testing.T) {
	m, _, _ := setup(t)
	m.Watch("plain", 42, config.Readiness{Method: config.ReadyNone})
	if ev, _ := outcome(t, m, "plain"); !ev.Ready || ev.Pid != 42 {
		t.Errorf("outcome = %+v; want ready for pid 42", ev)
	}
}

func TestUnknownMethodFails(t *testing.T) {
	m, _, _ := setup(t)
	m.Watch("odd", 42, config.Readiness{Method: "smoke"})
	ev, _ := outcome(t, m, "odd")
	if ev.Err == nil || ev.Err.Error() != `unknown readiness method "smoke"` {
		t.Errorf("outcome = %+v; want error unknown readiness method \"smoke\"", ev)
	}
}

func TestWatchReplacesEarlier(t *testing.T) {
	m, _, _ := setup(t)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/old", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The first watch is ready at once; its outcome must never surface.
	m.Watch("svc", 100, config.Readiness{Method: config.ReadyFile, File: dir + "/old"})
	m.Watch("svc", 200, config.Readiness{Method: config.ReadyFile, File: dir + "/new"})
	if err := os.WriteFile(dir+"/new", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ev, seen := outcome(t, m, "svc")
	if !ev.Ready || ev.Pid != 200 || len(seen) != 1 {
		t.Errorf("events = %+v; want only ready for pid 200", seen)
	}
}

func TestCancelEndsEverything(t *testing.T) {
	r := startReaper(t)
	before := runtime.NumGoroutine()
	sock := t.TempDir() + "/notify.sock"
	m, err := NewManager(Options{NotifySocket: sock})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	r.m.Store(m)
	started := runtime.NumGoroutine()

	dir := t.TempDir()
	sleeper := spawn(t, []string{"/bin/sleep", "60"})
	m.Watch("file", 1, config.Readiness{Method: config.ReadyFile, File: dir + "/missing/ready"})
	m.Watch("cmd", 2, config.Readiness{Method: config.ReadyCommand,
		Command: "echo $$ > " + dir + "/check.pid; exec sleep 60", Interval: time.Hour})
	m.Watch("notify", sleeper, config.Readiness{Method: config.ReadyNotify})
	var check int
	waitFor(t, "the check to start", func() bool {
		data, err := os.ReadFile(dir + "/check.pid")
		_, err2 := fmt.Sscan(string(data), &check)
		return err == nil && err2 == nil
	})
	for _, name := range []string{"file", "cmd", "notify"} {
		m.Cancel(name)
	}
	if e := r.exit(t, check); !e.claimed || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("check pid %d: %v (claimed by Exited: %v); want killed by SIGKILL and claimed", check, e.Exit, e.claimed)
	}
	// At most: the goroutine of the previous test may still have been
	// ending when the counts were taken.
	waitFor(t, fmt.Sprintf("goroutines back to %d after Cancel", started), func() bool {
		return runtime.NumGoroutine() <= started
	})
	if evs := m.Take(); len(evs) != 0 {
		t.Errorf("Take after Cancel = %+v; want nothing", evs)
	}
	if m.Check("cmd") {
		t.Error("Check(cancelled watch) = true; want false")
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d after Close", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("notify socket after Close: %v; want it removed", err)
	}
	if m.Exited(supervise.Exit{Pid: 1 << 30}) {
		t.Error("Exited(unknown pid) = true; want false")
	}
}
