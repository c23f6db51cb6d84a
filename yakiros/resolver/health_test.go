package resolver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
)

// modeCheck is a health check command that passes while the file mode says
// "ok", fails while it says anything else and hangs (with a background
// child) while it says "hang"; the pids of hanging runs go to mode.sh and
// mode.sleep. Builtins only, except for the hang's sleep.
func modeCheck(mode string) string {
	return fmt.Sprintf(`read m < %[1]s; case "$m" in ok) exit 0;; hang) echo $$ >> %[1]s.sh; sleep 60 & echo $! >> %[1]s.sleep; wait;; esac; exit 1`, mode)
}

func setMode(t *testing.T, path, mode string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(mode+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// track polls the status of component name until done says it has seen
// enough, and returns every sample. It asks the control socket directly
// and often, so that every value a count takes (one per check interval)
// is seen.
func (in *instance) track(name string, done func(control.ComponentStatus) bool) []control.ComponentStatus {
	in.t.Helper()
	var seen []control.ComponentStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, err := in.status()
		if err == nil {
			c := find(st, name)
			seen = append(seen, c)
			if done(c) {
				return seen
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("tracking %s: gave up; last %+v\nlog:\n%s", name, seen[len(seen)-1], in.log)
		}
	}
}

// checkCounts proves from samples of one process, taken while its checks
// failed, that the state follows the count exactly: ACTIVE below the fail
// threshold, DEGRADED from it up to the restart threshold, stopped at the
// restart threshold; that every failure is one check (checks - failures
// stays the same); and that each threshold itself was seen, not skipped.
func checkCounts(t *testing.T, samples []control.ComponentStatus, pid, fail, restart int) {
	t.Helper()
	base, seen, bad := -1, map[int]string{}, map[int]bool{}
	for _, c := range samples {
		if c.Pid != pid && c.Pid != 0 {
			break // restarted
		}
		n := c.HealthFailures
		if n == 0 {
			continue
		}
		if base < 0 {
			base = c.HealthChecks - n
		}
		if c.HealthChecks-n != base {
			t.Errorf("sample %+v: %d checks, %d failures; want every check since the first failure to count (%d before it)", c, c.HealthChecks, n, base)
		}
		want := "ACTIVE"
		switch {
		case n >= restart:
			want = "STOPPING|FAILED|INACTIVE"
		case n >= fail:
			want = "DEGRADED"
		}
		if !regexp.MustCompile("^("+want+")$").MatchString(c.State) && !bad[n] {
			bad[n] = true
			t.Errorf("sample with %d consecutive failures is %s; want %s (fail threshold %d, restart threshold %d)", n, c.State, want, fail, restart)
		}
		seen[n] = c.State
	}
	for _, n := range []int{fail - 1, fail} {
		if _, ok := seen[n]; n > 0 && n < restart && !ok {
			t.Errorf("no sample with %d consecutive failures (saw %v): the threshold %d was not observed", n, seen, fail)
		}
	}
}

// A service failing its command check becomes DEGRADED at exactly
// health_fail_threshold consecutive failures, its capability still up
// (caps shows it DEGRADED, the service requiring it keeps running), and
// ACTIVE again at its first pass; status shows HEALTH and LAST CHECK.
func TestHealthDegradesAndRecovers(t *testing.T) {
	in := newInstance(t)
	mode := filepath.Join(t.TempDir(), "mode")
	setMode(t, mode, "ok")
	decl(t, in.dir, "10-svc.toml", "svc", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.svc"},
		fmt.Sprintf("health_check = %q", modeCheck(mode)), `health_interval = "150ms"`, `health_timeout = "5s"`,
		"health_fail_threshold = 3", "health_restart_threshold = 6")
	decl(t, in.dir, "20-user.toml", "user", "service", "/bin/sleep", []string{"1000"}, []string{"cap.svc"}, nil)
	in.start()
	st := in.waitFor("svc checked and healthy", func(st control.StatusData) bool {
		c := find(st, "svc")
		return c.State == "ACTIVE" && c.Health == "ok" && c.HealthChecks >= 2 && find(st, "user").State == "ACTIVE"
	})
	svc, user := find(st, "svc"), find(st, "user")
	if user.Health != "" || user.LastCheckMSAgo != -1 || user.HealthChecks != 0 {
		t.Errorf("user (no health check) = %+v; want no health, last check -1", user)
	}
	if svc.HealthFailures != 0 || svc.HealthReason != "" || svc.LastCheckMSAgo < 0 {
		t.Errorf("svc = %+v; want healthy with a last check", svc)
	}
	_, out, _ := in.ctl("status")
	for _, want := range []string{
		"COMPONENT            STATE      PID     UPTIME  RESTARTS HEALTH   LAST CHECK\n",
		fmt.Sprintf("svc                  ACTIVE     %-7d ", svc.Pid),
		"user                 ACTIVE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("graphctl status =\n%s\nwant it to contain %q", out, want)
		}
	}
	if !regexp.MustCompile(`(?m)^svc +ACTIVE +\d+ +\S+ +0 +OK +\d+s ago$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^user +ACTIVE +\d+ +\S+ +0 +- +-$`).MatchString(out) {
		t.Errorf("graphctl status =\n%s\nwant svc OK with its last check, user without health", out)
	}

	setMode(t, mode, "fail")
	samples := in.track("svc", func(c control.ComponentStatus) bool { return c.State == "DEGRADED" })
	checkCounts(t, samples, svc.Pid, 3, 6)
	degraded := samples[len(samples)-1]
	if degraded.HealthFailures != 3 || degraded.Health != "failing" || degraded.HealthReason != "exited with status 1" {
		t.Errorf("svc when first seen DEGRADED = %+v; want 3 failures, exited with status 1", degraded)
	}
	_, out, _ = in.ctl("caps")
	if !strings.Contains(out, "cap.svc                        DEGRADED svc\n") || !strings.Contains(out, "Total: 9 capabilities (9 up, 0 down)\n") {
		t.Errorf("graphctl caps while svc is degraded =\n%s\nwant cap.svc DEGRADED, still counted up", out)
	}
	var caps control.CapsData
	_, out, _ = in.ctl("--json", "caps")
	if err := json.Unmarshal([]byte(out), &caps); err != nil {
		t.Fatal(err)
	}
	for _, c := range caps.Capabilities {
		if c.Name == "cap.svc" && c.Status != "DEGRADED" {
			t.Errorf("--json caps: cap.svc = %+v; want DEGRADED", c)
		}
	}
	_, out, _ = in.ctl("status")
	if !regexp.MustCompile(`(?m)^svc +DEGRADED +\d+ +\S+ +0 +FAIL\([3-5]\) +\d+s ago$`).MatchString(out) ||
		!strings.Contains(out, "Summary: 2 active, 1 degraded, 0 starting, 0 failed, 3 total") {
		t.Errorf("graphctl status while degraded =\n%s\nwant svc DEGRADED, FAIL(n)", out)
	}
	if c := find(in.waitFor("status", states(nil)), "user"); c.State != "ACTIVE" || c.Pid != user.Pid {
		t.Errorf("user = %+v while svc is degraded; want still ACTIVE as pid %d", c, user.Pid)
	}

	setMode(t, mode, "ok")
	samples = in.track("svc", func(c control.ComponentStatus) bool { return c.State == "ACTIVE" })
	for _, c := range samples {
		if c.HealthFailures == 0 && c.State != "ACTIVE" || c.HealthFailures > 0 && c.State != "DEGRADED" {
			t.Errorf("sample while recovering = %+v; want DEGRADED while failing, ACTIVE from the first pass", c)
		}
	}
	if c := samples[len(samples)-1]; c.Health != "ok" || c.HealthReason != "" || c.Pid != svc.Pid {
		t.Errorf("svc after recovering = %+v; want ok, same pid %d", c, svc.Pid)
	}
	_, out, _ = in.ctl("caps")
	if !strings.Contains(out, "cap.svc                        UP      svc\n") {
		t.Errorf("graphctl caps after recovery =\n%s\nwant cap.svc UP", out)
	}
	for _, want := range []string{
		"component 'svc': health check failed: exited with status 1",
		"component 'svc' is DEGRADED: 3 consecutive health checks failed (last: exited with status 1)",
		"component 'svc' recovered from DEGRADED: health check passed",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, in.log)
		}
	}
	if strings.Contains(in.log.String(), "reaped orphan") {
		t.Errorf("check processes were reaped as orphans:\n%s", in.log)
	}
}

// At health_restart_threshold consecutive failures the service is stopped,
// FAILED, and restarted by its restart policy; the new process is checked
// afresh.
func TestHealthRestartsAtThreshold(t *testing.T) {
	in := newInstance(t)
	mode := filepath.Join(t.TempDir(), "mode")
	setMode(t, mode, "ok")
	decl(t, in.dir, "10-svc.toml", "svc", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.svc"},
		fmt.Sprintf("health_check = %q", modeCheck(mode)), `health_interval = "150ms"`, `health_timeout = "5s"`,
		"health_failures = 2", "health_restart_threshold = 4", "restart_max = 3", `restart_window = "1m"`)
	in.start()
	svc := find(in.waitFor("svc healthy", func(st control.StatusData) bool {
		c := find(st, "svc")
		return c.State == "ACTIVE" && c.Health == "ok"
	}), "svc")

	setMode(t, mode, "fail")
	samples := in.track("svc", func(c control.ComponentStatus) bool { return c.Pid != svc.Pid })
	setMode(t, mode, "ok")
	checkCounts(t, samples, svc.Pid, 2, 4)
	want := "4 consecutive health checks failed (last: exited with status 1)"
	stopped := false
	for _, c := range samples {
		if c.State == "STOPPING" || c.State == "FAILED" {
			stopped = true
			if c.Reason != want || c.HealthFailures != 4 {
				t.Errorf("svc stopped = %+v; want reason %q and 4 failures", c, want)
			}
		}
	}
	if !stopped {
		t.Errorf("svc was never seen STOPPING or FAILED after its 4th failure; samples %+v", samples)
	}
	if !gone(svc.Pid) {
		t.Errorf("the old process %d still exists", svc.Pid)
	}
	st := in.waitFor("svc restarted and healthy", func(st control.StatusData) bool {
		c := find(st, "svc")
		return c.State == "ACTIVE" && c.Pid != 0 && c.Health == "ok"
	})
	if c := find(st, "svc"); c.Restarts != 1 || c.HealthFailures != 0 || c.Pid == svc.Pid {
		t.Errorf("svc after the restart = %+v; want a new pid, 1 restart, no failures", c)
	}
	if !strings.Contains(in.log.String(), "component 'svc': "+want) {
		t.Errorf("log lacks the restart:\n%s", in.log)
	}
}

// A hung check is killed with its process group at health_timeout and
// counts as a failure; status keeps answering meanwhile.
func TestHealthHungCheckKilled(t *testing.T) {
	// The check's background sleep is orphaned when its shell is killed;
	// as a subreaper the test process (graph-resolver) gets it back.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	in := newInstance(t)
	mode := filepath.Join(t.TempDir(), "mode")
	setMode(t, mode, "ok")
	decl(t, in.dir, "10-svc.toml", "svc", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.svc"},
		fmt.Sprintf("health_check = %q", modeCheck(mode)), `health_interval = "100ms"`, `health_timeout = "300ms"`,
		"health_fail_threshold = 2", "health_restart_threshold = 100")
	in.start()
	in.waitFor("svc healthy", func(st control.StatusData) bool { return find(st, "svc").Health == "ok" })

	setMode(t, mode, "hang")
	c := find(in.waitFor("a timed-out check", func(st control.StatusData) bool {
		return find(st, "svc").HealthFailures >= 1
	}), "svc")
	if c.HealthReason != "timed out after 300ms, killed" {
		t.Errorf("svc = %+v; want the failure to say the check timed out", c)
	}
	setMode(t, mode, "ok")
	in.waitFor("svc healthy again", func(st control.StatusData) bool { return find(st, "svc").Health == "ok" })
	for _, suffix := range []string{".sh", ".sleep"} {
		data, err := os.ReadFile(mode + suffix)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(f)
			waitUntil(t, fmt.Sprintf("hung check process %d (%s) to be gone", pid, suffix), func() bool { return gone(pid) })
		}
	}
	sh, _ := os.ReadFile(mode + ".sh")
	for _, f := range strings.Fields(string(sh)) {
		if strings.Contains(in.log.String(), "reaped orphan pid "+f+" ") {
			t.Errorf("the check's shell %s was reaped as an orphan, not claimed by the health manager:\n%s", f, in.log)
		}
	}
}

// healthServiceBin builds testbins/test-health-service.
func healthServiceBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "test-health-service")
	if out, err := exec.Command("go", "build", "-o", bin, "yakimg/testbins/test-health-service").CombinedOutput(); err != nil {
		t.Fatalf("go build test-health-service: %v\n%s", err, out)
	}
	return bin
}

// ask sends one command to test-health-service's control port.
func ask(t *testing.T, addr, line string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintln(conn, line)
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return strings.TrimSpace(answer)
}

// A service reporting its own health over the notify socket: HEALTH=fail
// counts as a failed check, with the service's reason; a service that
// stops reporting (hung) fails its checks too; HEALTH=ok recovers. It
// learns the interval from WATCHDOG_USEC.
func TestHealthNotify(t *testing.T) {
	bin := healthServiceBin(t)
	in := newInstance(t)
	addr := freeAddr(t)
	decl(t, in.dir, "10-svc.toml", "svc", "service", bin, []string{"--listen", addr}, nil, []string{"cap.svc"},
		`readiness = "notify"`, `health = "notify"`, `health_interval = "200ms"`, `health_timeout = "300ms"`,
		"health_fail_threshold = 2", "health_restart_threshold = 100")
	in.start()
	svc := find(in.waitFor("svc healthy", func(st control.StatusData) bool {
		c := find(st, "svc")
		return c.State == "ACTIVE" && c.Health == "ok" && c.HealthChecks >= 2
	}), "svc")
	waitText(t, "svc.log", "reporting health every 100ms", readFile(filepath.Join(in.logDir, "svc.log")))

	if got := ask(t, addr, "unhealthy disk full"); got != "ok unhealthy" {
		t.Fatalf("unhealthy = %q", got)
	}
	samples := in.track("svc", func(c control.ComponentStatus) bool { return c.State == "DEGRADED" })
	checkCounts(t, samples, svc.Pid, 2, 100)
	if c := samples[len(samples)-1]; c.HealthReason != "disk full" {
		t.Errorf("svc = %+v; want the reason the service reported", c)
	}
	ask(t, addr, "healthy")
	in.waitFor("svc recovered", func(st control.StatusData) bool { return find(st, "svc").State == "ACTIVE" })

	ask(t, addr, "hang")
	samples = in.track("svc", func(c control.ComponentStatus) bool { return c.State == "DEGRADED" })
	checkCounts(t, samples, svc.Pid, 2, 100)
	if c := samples[len(samples)-1]; c.HealthReason != "no health report within 300ms" {
		t.Errorf("svc = %+v; want the failure to say no report came", c)
	}
	ask(t, addr, "healthy")
	in.waitFor("svc recovered", func(st control.StatusData) bool { return find(st, "svc").State == "ACTIVE" })
}

// A health file: the service is healthy while the file says so.
func TestHealthFile(t *testing.T) {
	in := newInstance(t)
	file := filepath.Join(t.TempDir(), "health")
	if err := os.WriteFile(file, []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	decl(t, in.dir, "10-svc.toml", "svc", "service", "/bin/sleep", []string{"1000"}, nil, []string{"cap.svc"},
		fmt.Sprintf("health_file = %q", file), `health_interval = "100ms"`, `health_timeout = "1s"`,
		"health_fail_threshold = 1", "health_restart_threshold = 100")
	in.start()
	in.waitFor("svc healthy", func(st control.StatusData) bool { return find(st, "svc").Health == "ok" })
	for _, tc := range []struct{ content, reason string }{
		{"fail: disk full\n", "disk full"},
		{"", ""},
		{"-", file + " does not exist"},
		{"ok\n", ""},
	} {
		if tc.content == "-" {
			os.Remove(file)
		} else if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		want := "ACTIVE"
		if tc.reason != "" {
			want = "DEGRADED"
		}
		c := find(in.waitFor(fmt.Sprintf("svc %s for %q", want, tc.content), func(st control.StatusData) bool {
			c := find(st, "svc")
			return c.State == want && c.HealthReason == tc.reason
		}), "svc")
		if tc.reason == "" && c.Health != "ok" || tc.reason != "" && c.Health != "failing" {
			t.Errorf("svc with file %q = %+v", tc.content, c)
		}
	}
}
