package supervise

// These tests reap with wait4(-1), which collects any child of the test
// process, so none of them may run in parallel.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reapUntil reaps until every pid in want has exited and returns their exits.
func reapUntil(t *testing.T, want ...int) map[int]Exit {
	t.Helper()
	got := map[int]Exit{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		exits, _, err := Reap()
		if err != nil {
			t.Fatalf("Reap: %v", err)
		}
		for _, e := range exits {
			got[e.Pid] = e
		}
		done := true
		for _, p := range want {
			if _, ok := got[p]; !ok {
				done = false
			}
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("pids %v not reaped; reaped %v", want, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startReport(t *testing.T, spec Spec) (int, chan Started) {
	t.Helper()
	ch := make(chan Started, 1)
	pid, err := Start(spec, func(s Started) { ch <- s })
	if err != nil {
		t.Fatalf("Start(%+v): %v", spec, err)
	}
	return pid, ch
}

func TestStartLogsAndExitStatus(t *testing.T) {
	logDir := filepath.Join(t.TempDir(), "graph")
	pid, started := startReport(t, Spec{
		Name:   "talker",
		Binary: "/bin/sh",
		Args:   []string{"-c", `echo "out $$ $(pwd) [$_YAKIROS_LAUNCH_COMPONENT]"; echo err >&2; exit 3`},
		LogDir: logDir,
	})
	if s := <-started; s.Err != nil || s.Pid != pid || s.Name != "talker" {
		t.Errorf("Started = %+v; want talker, pid %d, no error", s, pid)
	}
	e := reapUntil(t, pid)[pid]
	if e.Success() || e.String() != "exited with status 3" {
		t.Errorf("exit = %v (success %v); want exited with status 3", e, e.Success())
	}
	data, err := os.ReadFile(filepath.Join(logDir, "talker.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	header := regexp.MustCompile(`^\[\d+\] Starting component 'talker' \(pid ` + strconv.Itoa(pid) + `\)$`)
	if len(lines) != 3 || !header.MatchString(lines[0]) ||
		lines[1] != "out "+strconv.Itoa(pid)+" / []" || lines[2] != "err" {
		t.Errorf("talker.log =\n%s\nwant the header, then stdout (same pid, cwd /, no launcher variable), then stderr", data)
	}
}

func TestStartLogAppends(t *testing.T) {
	logDir := t.TempDir()
	for range 2 {
		pid, started := startReport(t, Spec{Name: "twice", Binary: "/bin/true", LogDir: logDir})
		<-started
		if e := reapUntil(t, pid)[pid]; !e.Success() {
			t.Fatalf("/bin/true: %v", e)
		}
	}
	data, _ := os.ReadFile(filepath.Join(logDir, "twice.log"))
	if n := strings.Count(string(data), "Starting component 'twice'"); n != 2 {
		t.Errorf("twice.log has %d start headers; want 2 (appended)\n%s", n, data)
	}
}

func TestStartExecFailure(t *testing.T) {
	logDir := t.TempDir()
	missing := filepath.Join(logDir, "no-such-binary")
	pid, started := startReport(t, Spec{Name: "broken", Binary: missing, LogDir: logDir})
	s := <-started
	if s.Err == nil || s.Err.Error() != "exec "+missing+": no such file or directory" {
		t.Errorf("Started.Err = %v; want exec %s: no such file or directory", s.Err, missing)
	}
	if e := reapUntil(t, pid)[pid]; e.String() != "exited with status 127" {
		t.Errorf("exit = %v; want exited with status 127", e)
	}
	data, _ := os.ReadFile(filepath.Join(logDir, "broken.log"))
	if !strings.Contains(string(data), "exec "+missing+": no such file or directory") {
		t.Errorf("broken.log = %q; want the exec error", data)
	}
}

func TestStartRefusesUnwritableLogDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Spec{Name: "x", Binary: "/bin/true", LogDir: file}, func(Started) {}); err == nil {
		t.Error("Start with a log dir that is a file succeeded")
	}
}

// Signal reaches the component's own children: they share its session.
func TestSignalReachesSession(t *testing.T) {
	// Become a subreaper so the orphaned grandchild is ours to reap and
	// its death can be observed without racing the host's init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	pid, started := startReport(t, Spec{
		Name:   "parent",
		Binary: "/bin/sh",
		Args:   []string{"-c", `sleep 1000 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; wait`, pidFile},
		LogDir: dir,
	})
	if s := <-started; s.Err != nil {
		t.Fatal(s.Err)
	}
	var child int
	for deadline := time.Now().Add(20 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		} else if time.Now().After(deadline) {
			t.Fatal("the component never wrote its child's pid")
		}
	}
	if err := Signal(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exits := reapUntil(t, pid, child)
	for _, p := range []int{pid, child} {
		if e := exits[p]; !e.Status.Signaled() || e.Status.Signal() != syscall.SIGTERM {
			t.Errorf("pid %d: %v; want killed by SIGTERM", p, e)
		}
	}
	if err := Signal(pid, syscall.SIGTERM); err == nil {
		t.Error("Signal to a reaped pid succeeded")
	}
}

func TestReapWithoutChildren(t *testing.T) {
	exits, more, err := Reap()
	if len(exits) != 0 || more || err != nil {
		t.Errorf("Reap() with no children = %v, %v, %v; want none, false, nil", exits, more, err)
	}
}

func TestSignalAllRefusedOutsidePID1(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("running as PID 1")
	}
	if err := SignalAll(0); err == nil {
		t.Error("SignalAll outside PID 1 succeeded; it must refuse")
	}
}
