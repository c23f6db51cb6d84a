package resolver

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/control"
)

// waitText polls until get returns text containing want.
func waitText(t *testing.T, what string, want string, get func() string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		text := get()
		if strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q:\n%s", what, want, text)
		}
	}
}

func readFile(path string) func() string {
	return func() string {
		data, _ := os.ReadFile(path)
		return string(data)
	}
}

// A failing component is restarted after a doubling back-off until it has
// had Restart.Max starts within Restart.Window; then it stays FAILED until
// `graphctl resolve` resets the count. One that recovers stays up, and one
// with Restart.Max 0 is never restarted.
func TestRestartPolicy(t *testing.T) {
	in := newInstance(t)
	marker := filepath.Join(t.TempDir(), "phoenix-ran")
	decl(t, in.dir, "a.toml", "crasher", "oneshot", "/bin/sh", []string{"-c", "echo run; exit 7"}, nil, nil,
		"restart_max = 3", `restart_window = "1m"`)
	decl(t, in.dir, "b.toml", "phoenix", "service", "/bin/sh",
		[]string{"-c", `if [ -e "$0" ]; then exec sleep 1000; fi; : > "$0"; exit 1`, marker}, nil, []string{"cap.phoenix"},
		"restart_max = 5", `restart_window = "1m"`)
	decl(t, in.dir, "c.toml", "never", "service", "/bin/sh", []string{"-c", "exit 1"}, nil, nil, "restart_max = 0")
	in.start()

	st := in.waitFor("crasher to give up", func(st control.StatusData) bool {
		return strings.HasPrefix(find(st, "crasher").Reason, "restarting too fast")
	})
	if c := find(st, "crasher"); c.State != "FAILED" || c.Reason != "restarting too fast: 3 starts in 1m0s" || c.Restarts != 2 {
		t.Errorf("crasher = %+v; want FAILED, restarting too fast: 3 starts in 1m0s, 2 restarts", c)
	}
	for _, want := range []string{
		"component 'crasher' restarts in 1s (1 of at most 3 starts)",
		"component 'crasher' restarts in 2s (2 of at most 3 starts)",
		"component 'crasher' restarting too fast: 3 starts in 1m0s (last: exited with status 7); not restarting until 'graphctl resolve' or a reload",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// Its output is relayed through a pipe and may trail its exit.
	var logText string
	waitUntil(t, "crasher's third run in its log", func() bool {
		logText = readFile(filepath.Join(in.logDir, "crasher.log"))()
		return strings.Count(logText, "run\n") >= 3
	})
	if strings.Count(logText, "Starting component 'crasher'") != 3 || strings.Count(logText, "run\n") != 3 {
		t.Errorf("crasher.log =\n%s\nwant three starts", logText)
	}

	// phoenix failed once (before crasher's second start) and came back.
	st = in.waitFor("phoenix", states(map[string]string{"phoenix": "ACTIVE"}))
	if c := find(st, "phoenix"); c.Restarts != 1 || c.Reason != "" || c.Pid == 0 {
		t.Errorf("phoenix = %+v; want ACTIVE after one restart", c)
	}
	if c := find(st, "never"); c.State != "FAILED" || c.Restarts != 0 || c.Reason != "exited with status 1" {
		t.Errorf("never = %+v; want FAILED, not restarted", c)
	}

	// resolve resets the count of every FAILED component and starts them.
	code, out, errOut := in.ctl("resolve")
	want := "Resolution pass complete\n  restart count reset: crasher, never\n  started: crasher, never\n"
	if code != 0 || out != want {
		t.Errorf("graphctl resolve = %d, %q, %q; want %q", code, out, errOut, want)
	}
	in.waitFor("crasher's fourth start", func(st control.StatusData) bool { return find(st, "crasher").Restarts >= 3 })
	code, out, _ = in.ctl("--json", "resolve")
	if code != 0 || !strings.Contains(out, `"started": [`) {
		t.Errorf("graphctl --json resolve = %d, %q", code, out)
	}
}

// A component that loses a requirement is stopped (TERM, then KILL after
// the grace period) and started again when the requirement returns — but
// only once its old process has been reaped, even when the requirement
// comes back first: never two instances.
func TestDependentStoppedUntilRequirementReturns(t *testing.T) {
	in := newInstance(t)
	tmp := t.TempDir()
	fifo := filepath.Join(tmp, "base.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	marker, pidFile := filepath.Join(tmp, "base-ran"), filepath.Join(tmp, "stubborn.pid")
	// base fails once, when told to, and then runs for good.
	decl(t, in.dir, "a.toml", "base", "service", "/bin/sh",
		[]string{"-c", `if [ -e "$0" ]; then exec sleep 1000; fi; : > "$0"; read x < "$1"; exit 1`, marker, fifo},
		nil, []string{"cap.base"}, "restart_max = 5")
	// stubborn ignores SIGTERM and refuses to run beside a live old self.
	decl(t, in.dir, "b.toml", "stubborn", "service", "/bin/sh", []string{"-c",
		`if [ -s "$0" ] && kill -0 "$(cat "$0")" 2>/dev/null; then echo "two instances"; exit 99; fi
echo $$ > "$0"; trap '' TERM; while :; do sleep 0.05; done`, pidFile},
		[]string{"cap.base"}, nil)
	decl(t, in.dir, "c.toml", "polite", "service", "/bin/sleep", []string{"1000"}, []string{"cap.base"}, nil)
	in.start()
	st := in.waitFor("everything", states(map[string]string{"base": "ACTIVE", "stubborn": "ACTIVE", "polite": "ACTIVE"}))
	oldStubborn, oldPolite := find(st, "stubborn").Pid, find(st, "polite").Pid
	waitText(t, "stubborn.pid", "\n", readFile(pidFile)) // its trap is set

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("fail\n")
	w.Close()

	// base is back after its 1 s back-off while stubborn is still in its
	// 3 s grace: it must not be started again yet.
	st = in.waitFor("base back, stubborn still stopping", states(map[string]string{"base": "ACTIVE", "stubborn": "STOPPING"}))
	if c := find(st, "stubborn"); c.Pid != oldStubborn || c.Reason != "requirement 'cap.base' is down" {
		t.Errorf("stubborn = %+v; want its old process %d stopping because cap.base is down", c, oldStubborn)
	}
	st = in.waitFor("stubborn's new process", func(st control.StatusData) bool {
		c := find(st, "stubborn")
		return c.State == "ACTIVE" && c.Pid != oldStubborn
	})
	if !gone(oldStubborn) {
		t.Errorf("stubborn's old process %d still exists", oldStubborn)
	}
	if c := find(st, "stubborn"); c.Restarts != 1 {
		t.Errorf("stubborn = %+v; want one restart", c)
	}
	if c := find(st, "polite"); c.State != "ACTIVE" || c.Pid == oldPolite || c.Restarts != 1 || !gone(oldPolite) {
		t.Errorf("polite = %+v (old pid %d gone: %v); want a new process after its old one ended", c, oldPolite, gone(oldPolite))
	}
	if strings.Contains(in.log.String(), "two instances") || strings.Contains(readFile(filepath.Join(in.logDir, "stubborn.log"))(), "two instances") {
		t.Error("a second stubborn ran beside the first")
	}
	for _, want := range []string{
		"stopping component 'stubborn' (pid ",
		"component 'stubborn' (pid ",
		"ignored SIGTERM for 3s; sending SIGKILL",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
