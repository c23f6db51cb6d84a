package supervise

// These tests reap with wait4(-1), which collects any child of the test
// process, so none of them may run in parallel.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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

func testLogs(t *testing.T, max int64) *Logs {
	t.Helper()
	return NewLogs(filepath.Join(t.TempDir(), "graph"), max, t.Errorf)
}

func start(t *testing.T, logs *Logs, spec Spec) int {
	t.Helper()
	pid, err := Start(spec, logs)
	if err != nil {
		t.Fatalf("Start(%+v): %v", spec, err)
	}
	return pid
}

// waitLog waits until name's log contains want (copiers run on their own)
// and returns the log.
func waitLog(t *testing.T, logs *Logs, name, want string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(logs.Path(name))
		if strings.Contains(string(data), want) {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s.log = %q; never contained %q", name, data, want)
		}
	}
}

func TestStartLogsAndExitStatus(t *testing.T) {
	logs := testLogs(t, 1<<20)
	pid := start(t, logs, Spec{
		Name:   "talker",
		Binary: "/bin/sh",
		Args:   []string{"-c", `echo "out $$ $(pwd)"; echo err >&2; read x || echo "stdin empty"; echo done`},
	})
	e := reapUntil(t, pid)[pid]
	if !e.Success() || e.String() != "exited with status 0" {
		t.Errorf("exit = %v (success %v); want exited with status 0", e, e.Success())
	}
	data := waitLog(t, logs, "talker", "done\n")
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	header := regexp.MustCompile(`^\[\d+\] Starting component 'talker' \(pid ` + strconv.Itoa(pid) + `\)$`)
	if len(lines) != 5 || !header.MatchString(lines[0]) || lines[1] != "out "+strconv.Itoa(pid)+" /" ||
		lines[2] != "err" || lines[3] != "stdin empty" {
		t.Errorf("talker.log =\n%s\nwant the header, then stdout (same pid, cwd /), stderr, and stdin at EOF", data)
	}
}

func TestExitStatusAndSignal(t *testing.T) {
	logs := testLogs(t, 1<<20)
	three := start(t, logs, Spec{Name: "three", Binary: "/bin/sh", Args: []string{"-c", "exit 3"}})
	killed := start(t, logs, Spec{Name: "killed", Binary: "/bin/sh", Args: []string{"-c", "kill -9 $$"}})
	exits := reapUntil(t, three, killed)
	if e := exits[three]; e.Success() || e.String() != "exited with status 3" {
		t.Errorf("exit 3: %v", e)
	}
	if e := exits[killed]; e.Success() || e.String() != "killed by signal 9 (killed)" {
		t.Errorf("kill -9: %v", e)
	}
}

// Children get exactly PATH, HOME=/, TERM (when PID 1 has one) and the
// Spec's extra variables: nothing else of the supervisor's environment.
func TestCleanEnvironment(t *testing.T) {
	t.Setenv("SECRET_OF_PID1", "leak")
	t.Setenv("TERM", "vt220")
	t.Setenv("PATH", "/usr/bin:/bin")
	logs := testLogs(t, 1<<20)
	pid := start(t, logs, Spec{Name: "env", Binary: "/usr/bin/env", Env: []string{"NOTIFY_SOCKET=/run/x"}})
	reapUntil(t, pid)
	want := "PATH=/usr/bin:/bin\nHOME=/\nTERM=vt220\nNOTIFY_SOCKET=/run/x\n"
	data := waitLog(t, logs, "env", "NOTIFY_SOCKET")
	if _, body, _ := strings.Cut(data, "\n"); body != want {
		t.Errorf("environment =\n%s\nwant\n%s", body, want)
	}

	t.Setenv("PATH", "")
	t.Setenv("TERM", "")
	if got := environment(nil); strings.Join(got, " ") != "PATH="+defaultPath+" HOME=/" {
		t.Errorf("environment without PATH and TERM = %q; want the default PATH and HOME only", got)
	}
}

func TestStartLogAppends(t *testing.T) {
	logs := testLogs(t, 1<<20)
	for range 2 {
		pid := start(t, logs, Spec{Name: "twice", Binary: "/bin/echo", Args: []string{"hi"}})
		if e := reapUntil(t, pid)[pid]; !e.Success() {
			t.Fatalf("/bin/echo: %v", e)
		}
		// Each copier finishes before the next start, so the second
		// start opens the file anew.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			logs.mu.Lock()
			open := len(logs.files)
			logs.mu.Unlock()
			if open == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the copier never closed the log")
			}
		}
	}
	data, _ := os.ReadFile(logs.Path("twice"))
	if n := strings.Count(string(data), "Starting component 'twice'"); n != 2 || strings.Count(string(data), "hi\n") != 2 {
		t.Errorf("twice.log has %d start headers; want 2 (appended)\n%s", n, data)
	}
}

// A failed exec is reported by Start itself, leaves no process behind and
// is noted in the log.
func TestStartExecFailure(t *testing.T) {
	logs := testLogs(t, 1<<20)
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	pid, err := Start(Spec{Name: "broken", Binary: missing}, logs)
	if pid != 0 || err == nil || err.Error() != "exec "+missing+": no such file or directory" {
		t.Errorf("Start(missing binary) = %d, %v; want 0, exec %s: no such file or directory", pid, err, missing)
	}
	if exits, more, err := Reap(); len(exits) != 0 || more || err != nil {
		t.Errorf("Reap after a failed exec = %v, %v, %v; want nothing left (ForkExec reaps it)", exits, more, err)
	}
	waitLog(t, logs, "broken", "Failed to start component 'broken': exec "+missing+": no such file or directory\n")

	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	if _, err := Start(Spec{Name: "noexec", Binary: notExec}, logs); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Start(non-executable file) = %v; want permission denied", err)
	}
}

func TestStartRefusesUnwritableLogDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := Start(Spec{Name: "x", Binary: "/bin/true"}, NewLogs(file, 1<<20, t.Errorf)); err == nil {
		reapUntil(t, pid)
		t.Error("Start with a log dir that is a file succeeded")
	}
}

// The log never grows past its cap: the full file becomes <name>.log.1 and
// the two files together hold the latest output, in order, unsplit.
func TestLogRotation(t *testing.T) {
	const max = 1000
	logs := testLogs(t, max)
	// 200 numbered lines of 10 bytes each: 2000 bytes plus the header.
	pid := start(t, logs, Spec{Name: "chatty", Binary: "/bin/sh",
		Args: []string{"-c", `i=1000; while [ $i -lt 1200 ]; do echo "line $i"; i=$((i+1)); done`}})
	reapUntil(t, pid)
	cur := waitLog(t, logs, "chatty", "line 1199\n")
	old, err := os.ReadFile(logs.Path("chatty") + ".1")
	if err != nil {
		t.Fatalf("no rotated file: %v", err)
	}
	if len(cur) > max || len(old) > max {
		t.Errorf("log sizes %d and %d; want both <= %d", len(cur), len(old), max)
	}
	both := string(old) + cur
	if !strings.HasSuffix(both, "line 1198\nline 1199\n") {
		t.Errorf("rotated logs end %q", both[len(both)-30:])
	}
	// Everything in the two files is whole lines in order: rotation
	// happened between reads, and reads of a shell's echo are whole lines.
	lines := strings.Split(strings.TrimSuffix(both, "\n"), "\n")
	first, _ := strconv.Atoi(strings.TrimPrefix(lines[0], "line "))
	for i, l := range lines {
		if l != fmt.Sprintf("line %d", first+i) {
			t.Fatalf("line %d of the rotated logs is %q; want %q\n%s", i, l, fmt.Sprintf("line %d", first+i), both)
		}
	}
	if len(both) < max {
		t.Errorf("rotation kept only %d bytes; want at least the cap's worth", len(both))
	}
}

// Output larger than the cap in one piece is cut into files of at most the
// cap, at line ends where there are any.
func TestLogWriteLargerThanCap(t *testing.T) {
	logs := testLogs(t, 100)
	lf, err := logs.open("big")
	if err != nil {
		t.Fatal(err)
	}
	read := func() (string, string) {
		cur, _ := os.ReadFile(logs.Path("big"))
		old, _ := os.ReadFile(logs.Path("big") + ".1")
		return string(cur), string(old)
	}
	if err := lf.write(bytes.Repeat([]byte("x"), 250)); err != nil {
		t.Fatal(err)
	}
	if cur, old := read(); len(cur) != 50 || len(old) != 100 {
		t.Errorf("after 250 bytes without newlines and a cap of 100: big.log %d bytes, big.log.1 %d; want 50 and 100", len(cur), len(old))
	}
	line := strings.Repeat("y", 39) + "\n"
	if err := lf.write([]byte(strings.Repeat(line, 5))); err != nil {
		t.Fatal(err)
	}
	logs.release(lf)
	if cur, old := read(); cur != line || old != line+line {
		t.Errorf("after five 40-byte lines in one write: big.log %q, big.log.1 %q; want whole lines, one and two", cur, old)
	}
}

// What a helper writes into Pipe lands in the component's log, without a
// header, after the component's own output and under the same cap.
func TestPipeWritesIntoComponentLog(t *testing.T) {
	logs := testLogs(t, 1<<20)
	pid := start(t, logs, Spec{Name: "svc", Binary: "/bin/echo", Args: []string{"own output"}})
	reapUntil(t, pid)
	waitLog(t, logs, "svc", "own output\n")
	w, err := logs.Pipe("svc")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "check says hello\n")
	w.Close()
	data := waitLog(t, logs, "svc", "check says hello\n")
	if strings.Count(data, "Starting component") != 1 || !strings.HasSuffix(data, "own output\ncheck says hello\n") {
		t.Errorf("svc.log =\n%s\nwant the component's header and output, then the helper's line", data)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := NewLogs(file, 1<<20, t.Errorf).Pipe("x"); err == nil {
		t.Error("Pipe with a log dir that is a file succeeded")
	}
}

// An orphan that keeps the old pipe open shares the file with the next
// process of the component: both copiers write to the current file.
func TestLogSharedByOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	logs := testLogs(t, 1<<20)
	dir := t.TempDir()
	go1 := filepath.Join(dir, "go")
	pidFile := filepath.Join(dir, "orphan.pid")
	// The first process leaves a child behind that writes once told to.
	first := start(t, logs, Spec{Name: "svc", Binary: "/bin/sh", Args: []string{"-c",
		`(while [ ! -e "$0" ]; do sleep 0.02; done; echo orphan speaks) & echo $! > "$1"`, go1, pidFile}})
	reapUntil(t, first)
	second := start(t, logs, Spec{Name: "svc", Binary: "/bin/echo", Args: []string{"second"}})
	reapUntil(t, second)
	waitLog(t, logs, "svc", "second\n")
	os.WriteFile(go1, nil, 0o644)
	data := waitLog(t, logs, "svc", "orphan speaks\n")
	orphan, _ := os.ReadFile(pidFile)
	if p, err := strconv.Atoi(strings.TrimSpace(string(orphan))); err == nil {
		reapUntil(t, p)
	}
	if strings.Count(data, "Starting component 'svc'") != 2 {
		t.Errorf("svc.log =\n%s\nwant both headers and the orphan's line", data)
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
	pid := start(t, testLogs(t, 1<<20), Spec{
		Name:   "parent",
		Binary: "/bin/sh",
		Args:   []string{"-c", `sleep 1000 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; wait`, pidFile},
	})
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
	if e := reapUntil(t, pid)[pid]; !e.Status.Signaled() || e.Status.Signal() != syscall.SIGTERM {
		t.Errorf("component: %v; want killed by SIGTERM", e)
	}
	// The shell, signalled in the same sweep, may have reaped its child
	// before dying itself; if not, the child was orphaned to us.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		exits, _, _ := Reap()
		for _, e := range exits {
			if e.Pid == child && (!e.Status.Signaled() || e.Status.Signal() != syscall.SIGTERM) {
				t.Errorf("component's child: %v; want killed by SIGTERM", e)
			}
		}
		if errors.Is(syscall.Kill(child, 0), syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the component's child %d survived SIGTERM to the session", child)
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

// TestExtraFiles gives the child two pipes as descriptors 3 and 4 and
// checks that it can write to both, and that nothing else leaks past them.
func TestExtraFiles(t *testing.T) {
	logs := testLogs(t, 1<<20)
	var readers []*os.File
	var spec = Spec{Name: "extra", Binary: "/bin/sh", Args: []string{"-c", "echo three >&3; echo four >&4"}}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readers = append(readers, r)
		spec.ExtraFiles = append(spec.ExtraFiles, w)
	}
	pid := start(t, logs, spec)
	for _, f := range spec.ExtraFiles {
		f.Close()
	}
	reapUntil(t, pid)
	for i, want := range []string{"three\n", "four\n"} {
		got, err := io.ReadAll(readers[i])
		if err != nil || string(got) != want {
			t.Errorf("descriptor %d carried %q, %v; want %q", i+3, got, err, want)
		}
	}

	// ls sees 0-4 and its own directory descriptor (5): nothing of the
	// parent's beyond the two extra files.
	pid = start(t, logs, Spec{Name: "fds", Binary: "/bin/ls", Args: []string{"/proc/self/fd"}, ExtraFiles: []*os.File{readers[0], readers[1]}})
	reapUntil(t, pid)
	listing := waitLog(t, logs, "fds", "\n4\n")
	inherited := inheritable(t)
	for _, fd := range strings.Fields(listing[strings.Index(listing, ")")+1:]) {
		n, _ := strconv.Atoi(fd)
		if n > 5 && !inherited[n] {
			t.Errorf("child has descriptor %d open; want only 0-4, ls's own 5 and what the test process itself inherited", n)
		}
	}
}

// inheritable lists this process's descriptors without close-on-exec:
// whatever started the test may have left some, and every child gets them.
func inheritable(t *testing.T) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, e := range entries {
		fd, _ := strconv.Atoi(e.Name())
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			out[fd] = true
		}
	}
	return out
}

// TestStartIsolated: the clone creates the namespaces Isolation asks for
// (the child is PID 1 of its pid namespace) and argv[0] is Argv0.
func TestStartIsolated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces")
	}
	logs := testLogs(t, 1<<20)
	pid := start(t, logs, Spec{
		Name: "boxed", Binary: "/bin/sh", Argv0: "boxed-sh",
		Args:      []string{"-c", `echo "pid $$ argv0 $0"`},
		Isolation: &Isolation{CgroupFD: -1, Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS},
	})
	if e := reapUntil(t, pid)[pid]; !e.Success() {
		t.Errorf("exit = %v", e)
	}
	waitLog(t, logs, "boxed", "pid 1 argv0 boxed-sh\n")
}

// TestStartIsolatedRefused: a clone the kernel refuses is a start error
// that says so, and no process is left.
func TestStartIsolatedRefused(t *testing.T) {
	logs := testLogs(t, 1<<20)
	// CLONE_NEWUSER with CLONE_FS is refused with EINVAL (clone(2)).
	_, err := Start(Spec{Name: "refused", Binary: "/bin/true",
		Isolation: &Isolation{CgroupFD: -1, Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_FS}}, logs)
	if err == nil || !strings.Contains(err.Error(), "clone into namespaces") {
		t.Fatalf("Start = %v; want the clone's error", err)
	}
}
