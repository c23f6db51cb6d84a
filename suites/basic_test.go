package suites

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"yakimg/suites/report"
)

func TestCompareStatus(t *testing.T) {
	comps, err := parseStatus([]byte(readGuest(t, "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	table := readGuest(t, "status.txt")
	if err := compareStatus(table, comps); err != nil {
		t.Errorf("compareStatus(guest) = %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"state", "test-orphan          INACTIVE", "test-orphan          FAILED  ", "--json status says test-orphan INACTIVE"},
		{"pid", "test-monitor         ACTIVE     240", "test-monitor         ACTIVE     241", "pid 241"},
		{"active count", "8 active", "7 active", "summary counts [7 0 1 0 12]"},
		{"starting count", "1 starting", "0 starting", "summary counts"},
		{"row missing", "test-orphan          INACTIVE   -       0s      0        -        -\n", "", "11 rows"},
		{"extra summary", "12 total\n", "12 total\nmore\n", "exactly one summary line"},
		{"columns", "kernel               ACTIVE     -       0s      0        -        -", "kernel               ACTIVE     -       0s      0        -", "7 columns"},
		{"last check", "kernel               ACTIVE     -       0s      0        -        -", "kernel               ACTIVE     -       0s      0        -        3s", "7 columns"},
		{"health", "test-monitor         ACTIVE     240     3s      0        -", "test-monitor         ACTIVE     240     3s      0        OK", "shows health OK"},
		{"checked", "test-monitor         ACTIVE     240     3s      0        -        -", "test-monitor         ACTIVE     240     3s      0        -        2s ago", "last check 2s ago"},
	} {
		changed := strings.Replace(table, tc.from, tc.to, 1)
		if changed == table {
			t.Fatalf("%s: the change does not apply", tc.name)
		}
		if err := compareStatus(changed, comps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: compareStatus = %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestBasicCasesAgainstCannedGuest(t *testing.T) {
	g := replyGraphctl(t, guestReplies(t))
	for _, name := range []string{"status-table-matches-json", "capabilities-up", "readiness-methods"} {
		if c := runSuiteCase(t, basic, name, g); c.Status != report.Pass {
			t.Errorf("%s = %+v; want pass", name, c)
		}
	}
	// On this host the pids in the canned status are not the services.
	if c := runSuiteCase(t, basic, "components-up", g); c.Status != report.Fail || !strings.Contains(c.Message, "test-echo-server: pid 229") {
		t.Errorf("components-up with pids that are not the services = %+v; want fail naming the pid", c)
	}
}

func TestBasicCatchesWrongAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, caseName, args, from, to, msg string
	}{
		{"monitor not up", "components-up", "--json status", `"name": "test-monitor",
      "type": "service",
      "state": "ACTIVE"`, `"name": "test-monitor",
      "type": "service",
      "state": "FAILED"`, "test-monitor is FAILED, not ACTIVE"},
		{"restarted", "components-up", "--json status", `"restarts": 0`, `"restarts": 2`, "kernel was restarted 2 times"},
		{"wrong provider", "capabilities-up", "--json caps", `"test-web-server"`, `"test-monitor"`, "test.web is"},
		{"orphan's need up", "capabilities-up", "--json caps", `"name": "files"`, `"name": "test.never-provided"`, "files is"},
		{"table disagrees", "capabilities-up", "caps", "test.echo                      UP      test-echo-server", "test.echo                      DOWN    -", "shows test.echo as"},
		{"total wrong", "capabilities-up", "caps", "(15 up, 0 down)", "(14 up, 1 down)", "ends with"},
		{"status table", "status-table-matches-json", "status", "Summary: 8 active", "Summary: 9 active", "summary counts"},
		{"echo not listed", "readiness-methods", "--json readiness", `"name": "test-echo-server"`, `"name": "test-echo-server-2"`, "test-echo-server is not listed"},
		{"web waiting", "readiness-methods", "--json readiness", `"method": "command",
      "timeout_ms": 20000,
      "state": "ACTIVE"`, `"method": "command",
      "timeout_ms": 20000,
      "state": "READY_WAIT"`, "test-web-server is READY_WAIT, not ACTIVE"},
		{"database failed", "readiness-methods", "--json readiness", `"state": "ACTIVE",
      "waiting_ms": 0,
      "status": "",
      "reason": ""`, `"state": "FAILED",
      "waiting_ms": 0,
      "status": "",
      "reason": "readiness timeout after 30s"`, `test-database is FAILED, not ACTIVE (reason "readiness timeout after 30s")`},
		{"database by command", "readiness-methods", "--json readiness", `"method": "file"`, `"method": "command"`, "test-database has method command"},
		{"web timeout", "readiness-methods", "--json readiness", `"timeout_ms": 20000,
      "state": "ACTIVE",
      "waiting_ms": 0,
      "status": "",`, `"timeout_ms": 30000,
      "state": "ACTIVE",
      "waiting_ms": 0,
      "status": "",`, "test-web-server has method command, timeout 30000ms; want command, 20000ms"},
		{"no notify status", "readiness-methods", "--json readiness", `"status": "listening on 127.0.0.1:7070"`, `"status": ""`, "test-echo-server has status"},
		{"no header", "readiness-methods", "readiness", "Readiness Status:", "Readiness:", "header"},
		{"echo waiting text", "readiness-methods", "readiness", "timeout=20s [READY]\n  test-web-server", "timeout=20s [WAITING 3s]\n  test-web-server", "test-echo-server: method=notify"},
		{"summary short", "readiness-methods", "readiness", "Summary: 3 ready", "Summary: 2 ready", "counts fewer than the 3"},
		{"no summary", "readiness-methods", "readiness", "\nSummary: 3 ready, 0 waiting, 0 failed/timeout\n", "\n", "the last line is"},
	} {
		replies := guestReplies(t)
		r := replies[tc.args]
		changed := strings.Replace(r.stdout, tc.from, tc.to, 1)
		if changed == r.stdout {
			t.Fatalf("%s: the change does not apply", tc.name)
		}
		r.stdout = changed
		replies[tc.args] = r
		d := 3 * time.Second
		if tc.name == "monitor not up" || tc.args == "--json readiness" {
			d = waitFails
		}
		c := runSuiteCaseWithin(t, basic, tc.caseName, replyGraphctl(t, replies), d)
		if c.Status != report.Fail || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s: %s = %+v; want fail with %q", tc.name, tc.caseName, c, tc.msg)
		}
	}
}

// built caches buildBin's programs for the whole test binary.
var built sync.Map // package path → *builtBin

type builtBin struct {
	once sync.Once
	path string
	err  error
}

// buildBin builds one of the module's programs, once per test run.
func buildBin(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := built.LoadOrStore(pkg, &builtBin{})
	b := v.(*builtBin)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// startBin runs bin with args and a free port in place of "ADDR", and
// returns the address once it accepts connections.
func startBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for i, a := range args {
		if a == "ADDR" {
			args[i] = addr
		}
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %s", bin, addr)
		}
	}
}

func TestHTTPKeepAlive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := startBin(t, buildBin(t, "yakimg/testbins/test-web-server"), "--listen", "ADDR", "--files", t.TempDir())
	if v, err := httpKeepAlive(ctx, addr); err != nil || v != "v1" {
		t.Errorf("httpKeepAlive(test-web-server) = %q, %v; want v1", v, err)
	}

	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"closes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			fmt.Fprintln(w, "test-web-server v1")
		}, "keeping the connection open"},
		{"no version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") }, `"hello\n"`},
		{"unhealthy", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				http.Error(w, "no", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "test-web-server v2")
		}, "GET /health answered 503"},
	} {
		srv := httptest.NewServer(tc.h)
		_, err := httpKeepAlive(ctx, strings.TrimPrefix(srv.URL, "http://"))
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: httpKeepAlive = %v; want an error with %q", tc.name, err, tc.want)
		}
	}

	// A server that hangs up after one response fails the second request.
	hangUp := serveEcho(t, func(string) string { return "" })
	if _, err := httpKeepAlive(ctx, hangUp); err == nil {
		t.Errorf("httpKeepAlive(not HTTP) = nil error")
	}
}

func TestDBRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := startBin(t, buildBin(t, "yakimg/testbins/test-database"), "--listen", "ADDR", "--data", t.TempDir())
	if err := dbRoundTrip(ctx, addr); err != nil {
		t.Errorf("dbRoundTrip(test-database) = %v", err)
	}
	// A store that forgets: OK to everything, never a value.
	forgetful := serveEcho(t, func(l string) string {
		if strings.HasPrefix(l, "SET ") {
			return "OK"
		}
		return "NOT_FOUND"
	})
	if err := dbRoundTrip(ctx, forgetful); err == nil || !strings.Contains(err.Error(), "answered \"NOT_FOUND\"; want \"VALUE value ") {
		t.Errorf("dbRoundTrip(forgetful) = %v; want the missing value named", err)
	}
}

func TestParseLogTail(t *testing.T) {
	out := "Recent logs for component 'x' (last 2 lines):\n" + strings.Repeat("─", 48) + "\nline one\nline two\n"
	if lines, err := parseLogTail(out, "x", 2); err != nil || strings.Join(lines, "|") != "line one|line two" {
		t.Errorf("parseLogTail = %q, %v", lines, err)
	}
	for _, bad := range []string{
		strings.Replace(out, "'x'", "'y'", 1),
		strings.Replace(out, "last 2", "last 20", 1),
		strings.Replace(out, strings.Repeat("─", 48), strings.Repeat("─", 47), 1),
		"line one\n",
	} {
		if lines, err := parseLogTail(bad, "x", 2); err == nil {
			t.Errorf("parseLogTail(%q) = %q, nil error", bad, lines)
		}
	}
	s := []string{"a", "b", "c", "b", "c", "d"}
	for _, tc := range []struct {
		run  []string
		want int
	}{{[]string{"b", "c"}, 3}, {[]string{"c", "d"}, 4}, {[]string{"a"}, 0}, {[]string{"c", "b", "d"}, -1}, {[]string{"d", "e"}, -1}} {
		if got := indexRun(s, tc.run); got != tc.want {
			t.Errorf("indexRun(%v) = %d; want %d", tc.run, got, tc.want)
		}
	}
}

func TestMonitorRoundMatchesTheMonitor(t *testing.T) {
	echo := startBin(t, buildBin(t, "yakimg/testbins/test-echo-server"), "--listen", "ADDR")
	web := startBin(t, buildBin(t, "yakimg/testbins/test-web-server"), "--listen", "ADDR", "--files", t.TempDir())
	db := startBin(t, buildBin(t, "yakimg/testbins/test-database"), "--listen", "ADDR", "--data", t.TempDir())
	cmd := exec.Command(buildBin(t, "yakimg/testbins/test-monitor"), "--echo", echo, "--web", web, "--database", db, "--interval", "100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "round 1:") {
			if !monitorRound.MatchString(sc.Text()) {
				t.Errorf("monitorRound does not match the monitor's %q", sc.Text())
			}
			break
		}
	}
	down := "2026/01/01 00:00:00.000000 round 2: echo UP (v1 monitor), web DOWN (connection refused), database UP (PONG v1)"
	if monitorRound.MatchString(down) {
		t.Errorf("monitorRound matches %q", down)
	}
}

func TestGraphctlMissingSocket(t *testing.T) {
	c := runSuiteCase(t, basic, "graphctl-missing-socket", buildBin(t, "yakimg/cmd/graphctl"))
	if c.Status != report.Pass {
		t.Errorf("graphctl-missing-socket with the real graphctl = %+v; want pass", c)
	}
	for _, tc := range []struct{ script, want string }{
		{"echo ok\n", "exited 0"},
		{"echo \"no $2\" >&2; echo 'try again' >&2; exit 1\n", "want one line"},
		{"echo 'cannot connect' >&2; exit 1\n", "want one line naming"},
		{"echo \"no $2\" >&2; exit 2\n", "exited 2; want 1"},
		{"echo \"no $2\"; echo \"no $2\" >&2; exit 1\n", "on stdout"},
	} {
		c := runSuiteCase(t, basic, "graphctl-missing-socket", fakeGraphctl(t, tc.script))
		if c.Status != report.Fail || !strings.Contains(c.Message, tc.want) {
			t.Errorf("graphctl script %q: %+v; want fail with %q", tc.script, c, tc.want)
		}
	}
}
