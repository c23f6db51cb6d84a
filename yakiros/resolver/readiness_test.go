package resolver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/readiness"
	"yakimg/yakiros/supervise"
)

// notifyHelper as the first argument makes the test binary a notify
// service (see TestMain): it sends each further argument to
// $NOTIFY_SOCKET as one datagram, where an argument "wait:PATH" instead
// waits until PATH exists; then it sleeps until killed.
const notifyHelper = "notify-helper"

func notifyService(steps []string) int {
	sock := os.Getenv("NOTIFY_SOCKET")
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "notify helper: %v\n", err)
		return 1
	}
	for _, step := range steps {
		if path, ok := strings.CutPrefix(step, "wait:"); ok {
			for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		if _, err := conn.Write([]byte(step)); err != nil {
			fmt.Fprintf(os.Stderr, "notify helper: %v\n", err)
			return 1
		}
		fmt.Printf("sent %q to %s\n", step, sock)
	}
	time.Sleep(time.Hour)
	return 0
}

// readinessData runs `graphctl --json readiness`.
func (in *instance) readinessData() control.ReadinessData {
	in.t.Helper()
	var d control.ReadinessData
	code, out, errOut := in.ctl("--json", "readiness")
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil {
		in.t.Fatalf("graphctl --json readiness = %d, %v, %q\n%s", code, err, errOut, out)
	}
	return d
}

// waitUntil polls cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// A file-readiness service sits in READY_WAIT, providing nothing, until
// its file appears (a stale one is removed before the start); the service
// requiring it starts only then. `readiness` shows it waiting, then ready.
func TestFileReadiness(t *testing.T) {
	in := newInstance(t)
	tmp := t.TempDir()
	ready, release, seen := filepath.Join(tmp, "db.ready"), filepath.Join(tmp, "db.go"), filepath.Join(tmp, "web.saw")
	if err := os.WriteFile(ready, []byte("left over from an earlier run"), 0o644); err != nil {
		t.Fatal(err)
	}
	decl(t, in.dir, "10-db.toml", "db", "service", "/bin/sh",
		[]string{"-c", `while [ ! -e "$1" ]; do sleep 0.02; done; : > "$0"; exec sleep 1000`, ready, release},
		nil, []string{"cap.db"}, fmt.Sprintf("readiness_file = %q", ready), `readiness_timeout = "1m"`)
	decl(t, in.dir, "20-web.toml", "web", "service", "/bin/sh",
		[]string{"-c", `[ -e "$0" ] && echo "ready file was there" > "$1"; exec sleep 1000`, ready, seen},
		[]string{"cap.db"}, []string{"cap.web"})
	in.start()

	in.waitFor("db to wait", states(map[string]string{"db": "READY_WAIT", "web": "INACTIVE"}))
	if _, err := os.Stat(ready); !os.IsNotExist(err) {
		t.Errorf("stale readiness file still there after the start: %v", err)
	}
	code, out, _ := in.ctl("readiness")
	if want := regexp.MustCompile(`^Readiness Status:\n  db: method=file, timeout=60s \[WAITING \d+s\]\n\nSummary: 0 ready, 1 waiting, 0 failed/timeout\n$`); code != 0 || !want.MatchString(out) {
		t.Errorf("graphctl readiness = %d\n%s\nwant a match for %s", code, out, want)
	}
	_, out, _ = in.ctl("pending")
	if !strings.Contains(out, "web (INACTIVE) waiting for:\n  → cap.db: provided by db (READY_WAIT)\n") {
		t.Errorf("graphctl pending =\n%s\nwant web waiting for cap.db from db", out)
	}
	time.Sleep(200 * time.Millisecond) // nothing changes while the file is missing
	if c := find(in.waitFor("status", states(nil)), "web"); c.State != "INACTIVE" {
		t.Errorf("web = %+v before db is ready; want INACTIVE", c)
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in.waitFor("db ready, web started", states(map[string]string{"db": "ACTIVE", "web": "ACTIVE"}))
	waitUntil(t, "web to look for the ready file", func() bool { _, err := os.Stat(seen); return err == nil })
	d := in.readinessData()
	if len(d.Components) != 1 || d.Components[0].Name != "db" || d.Components[0].State != "ACTIVE" || d.Ready != 1 || d.Waiting != 0 {
		t.Errorf("readiness data = %+v; want db ready", d)
	}
	_, out, _ = in.ctl("readiness")
	if !strings.Contains(out, "  db: method=file, timeout=60s [READY]\n") {
		t.Errorf("graphctl readiness =\n%s\nwant db READY", out)
	}
	if !strings.Contains(in.log.String(), "component 'db' is ready (waited ") {
		t.Errorf("log lacks db's readiness:\n%s", in.log)
	}
}

// A command-readiness service is ready once its check exits 0; the check's
// output goes into the component's log, the check processes are reaped as
// the readiness manager's (not as orphans), and check-readiness runs the
// check at once instead of after readiness_interval.
func TestCommandReadiness(t *testing.T) {
	in := newInstance(t)
	up := filepath.Join(t.TempDir(), "up")
	decl(t, in.dir, "10-probed.toml", "probed", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.probed"},
		fmt.Sprintf("readiness_check = %q", `echo "probing $0"; [ -e `+up+` ]; s=$?; echo "check exits $s"; exit $s`),
		`readiness_interval = "1h"`, `readiness_timeout = "1m"`)
	decl(t, in.dir, "20-idle.toml", "idle", "service", "/bin/sleep", []string{"1000"}, nil, nil)
	in.start()
	in.waitFor("probed to wait", states(map[string]string{"probed": "READY_WAIT", "idle": "ACTIVE"}))
	logPath := filepath.Join(in.logDir, "probed.log")
	waitText(t, "probed.log", "probing /bin/sh\ncheck exits 1\n", readFile(logPath))

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"check-readiness", "nosuch"}, "graphctl: component 'nosuch' not found\n"},
		{[]string{"check-readiness", "idle"}, "graphctl: component 'idle' has no readiness method\n"},
		{[]string{"check-readiness", "a", "b"}, "graphctl: usage: check-readiness [component] (got \"a b\")\n"},
	} {
		if code, out, errOut := in.ctl(tc.args...); code != 1 || out != "" || errOut != tc.err {
			t.Errorf("graphctl %q = %d, %q, %q; want 1 and %q", tc.args, code, out, errOut, tc.err)
		}
	}
	if err := os.WriteFile(up, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The next check is an hour away: only check-readiness makes it ready.
	code, out, _ := in.ctl("check-readiness", "probed")
	if code != 0 || out != "Readiness check triggered for component 'probed'\n" {
		t.Errorf("graphctl check-readiness probed = %d, %q", code, out)
	}
	in.waitFor("probed ready", states(map[string]string{"probed": "ACTIVE"}))
	if got := strings.Count(readFile(logPath)(), "probing /bin/sh\n"); got != 2 {
		t.Errorf("probed.log has %d check runs; want 2:\n%s", got, readFile(logPath)())
	}
	if code, _, errOut := in.ctl("check-readiness", "probed"); code != 1 || errOut != "graphctl: component 'probed' is not waiting for readiness (state ACTIVE)\n" {
		t.Errorf("graphctl check-readiness probed once ACTIVE = %d, %q", code, errOut)
	}
	code, out, _ = in.ctl("--json", "check-readiness")
	if code != 0 || out != "{\n  \"checked\": []\n}\n" {
		t.Errorf("graphctl --json check-readiness with nothing waiting = %d, %q", code, out)
	}
	if strings.Contains(in.log.String(), "reaped orphan") {
		t.Errorf("check processes were reaped as orphans:\n%s", in.log)
	}
}

// A notify service is ready when it sends READY=1 to $NOTIFY_SOCKET; its
// STATUS= lines show in `readiness`.
func TestNotifyReadiness(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t)
	release := filepath.Join(t.TempDir(), "go")
	decl(t, in.dir, "10-notifier.toml", "notifier", "service", self,
		[]string{notifyHelper, "STATUS=warming up", "wait:" + release, "READY=1"}, nil, []string{"cap.notifier"},
		`readiness = "notify"`)
	decl(t, in.dir, "20-after.toml", "after", "service", "/bin/sleep", []string{"1000"}, []string{"cap.notifier"}, nil)
	in.start()
	in.waitFor("notifier to wait", states(map[string]string{"notifier": "READY_WAIT", "after": "INACTIVE"}))
	waitUntil(t, "the STATUS= line", func() bool {
		d := in.readinessData()
		return len(d.Components) == 1 && d.Components[0].Status == "warming up"
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in.waitFor("notifier ready", states(map[string]string{"notifier": "ACTIVE", "after": "ACTIVE"}))
	// Its output is relayed through a pipe and may trail its readiness.
	waitText(t, "notifier.log", fmt.Sprintf("sent \"READY=1\" to %s\n", in.notify), readFile(filepath.Join(in.logDir, "notifier.log")))
}

// A service not ready within readiness_timeout fails, its process stopped,
// and its restart policy applies: restarted after the back-off until it
// has had restart_max starts.
func TestReadinessTimeout(t *testing.T) {
	in := newInstance(t)
	never := filepath.Join(t.TempDir(), "never")
	decl(t, in.dir, "10-late.toml", "late", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.late"},
		fmt.Sprintf("readiness_file = %q", never), `readiness_timeout = "1s"`, "restart_max = 2", `restart_window = "1m"`)
	in.start()
	st := in.waitFor("late to wait", states(map[string]string{"late": "READY_WAIT"}))
	first := find(st, "late").Pid
	st = in.waitFor("late to give up", func(st control.StatusData) bool {
		return strings.HasPrefix(find(st, "late").Reason, "restarting too fast")
	})
	if c := find(st, "late"); c.State != "FAILED" || c.Reason != "restarting too fast: 2 starts in 1m0s" || c.Restarts != 1 || c.Pid != 0 {
		t.Errorf("late = %+v; want FAILED after 2 starts", c)
	}
	if !gone(first) {
		t.Errorf("late's first process %d still exists", first)
	}
	for _, want := range []string{
		"component 'late': readiness timeout after 1s",
		fmt.Sprintf("stopping component 'late' (pid %d): readiness timeout after 1s", first),
		"component 'late' restarts in 1s (1 of at most 2 starts)",
		"component 'late' restarting too fast: 2 starts in 1m0s (last: readiness timeout after 1s)",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, in.log)
		}
	}
	_, out, _ := in.ctl("readiness")
	if !strings.Contains(out, "  late: method=file, timeout=1s [FAILED/TIMEOUT]\n") || !strings.HasSuffix(out, "\nSummary: 0 ready, 0 waiting, 1 failed/timeout\n") {
		t.Errorf("graphctl readiness =\n%s\nwant late FAILED/TIMEOUT", out)
	}
}

// The loop applies readiness news only about a unit's current process:
// news about another pid (a process since replaced) or another component
// changes nothing, a STATUS= line (even an empty one) is kept without
// ending the wait, and an outcome after READY is ignored. No process runs
// here: the starter is fake, its pids above the kernel's pid_max.
func TestOnReadinessIgnoresStalePids(t *testing.T) {
	m, err := readiness.NewManager(readiness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waiting := config.Readiness{Method: config.ReadyFile, File: filepath.Join(t.TempDir(), "never"), Timeout: time.Hour}
	l := newLoop(&logger{w: io.Discard}, false, "", nil, m, nil, []config.Component{
		{Name: "svc", Binary: "/bin/true", Type: config.Service, Readiness: waiting, Provides: []string{"cap.svc"}},
	}, nil)
	pid := 1 << 23
	l.spawn = func(supervise.Spec) (int, error) { pid++; return pid, nil }
	l.resolve()
	u := l.byName["svc"]
	if u.state != ReadyWait || u.pid != pid {
		t.Fatalf("svc = %v pid %d; want READY_WAIT with pid %d", u.state, u.pid, pid)
	}
	for _, ev := range []readiness.Event{
		{Name: "svc", Pid: pid - 1, Ready: true},
		{Name: "svc", Pid: pid - 1, Err: errors.New("old news")},
		{Name: "other", Pid: pid, Ready: true},
		{Name: "svc", Pid: pid, Status: "warming up"},
		{Name: "svc", Pid: pid},
	} {
		l.onReadiness(ev)
		if u.state != ReadyWait || l.caps.Up("cap.svc") {
			t.Fatalf("after %+v: svc = %v, cap.svc up %v; want still READY_WAIT", ev, u.state, l.caps.Up("cap.svc"))
		}
	}
	if u.status != "" {
		t.Errorf("status after an empty STATUS= = %q; want it empty", u.status)
	}
	l.onReadiness(readiness.Event{Name: "svc", Pid: pid, Ready: true})
	if u.state != Active || !l.caps.Up("cap.svc") {
		t.Errorf("after READY: svc = %v, cap.svc up %v; want ACTIVE and up", u.state, l.caps.Up("cap.svc"))
	}
	l.onReadiness(readiness.Event{Name: "svc", Pid: pid, Err: errors.New("late failure")})
	if u.state != Active {
		t.Errorf("a failure after READY made svc %v; want it ACTIVE still", u.state)
	}
}

// Without a usable notify socket graph-resolver still has file and command
// readiness, and says that notify will time out; notify services get no
// NOTIFY_SOCKET.
func TestReadinessWithoutNotifySocket(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	m, err := newReadiness(filepath.Join(file, "notify.sock"), supervise.NewLogs(t.TempDir(), 1<<20, t.Errorf), &logger{w: &out})
	if err != nil || m == nil {
		t.Fatalf("newReadiness under a file = %v, %v; want a manager without notify", m, err)
	}
	defer m.Close()
	if env := m.Env(config.Readiness{Method: config.ReadyNotify}); env != nil {
		t.Errorf("Env(notify) = %q; want nothing without a socket", env)
	}
	if !strings.Contains(out.String(), "notify and signal readiness will time out") {
		t.Errorf("log = %q; want it to say notify will time out", out.String())
	}
}
