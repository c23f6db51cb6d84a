package suites

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"yakimg/suites/report"
)

const sampleMountinfo = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 254:2 / /checkpoint rw,relatime shared:3 - ext4 /dev/vda2 rw
25 22 0:22 / /mnt/with\040space rw - tmpfs my\134source rw,size=100k
26 24 0:23 / /checkpoint ro,relatime - tmpfs tmpfs ro
`

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("parseMountinfo found %d mounts; want 5", len(ms))
	}
	root, ok := findMount(ms, "/")
	if !ok || root.Dev != "254:1" || root.FSType != "ext4" || root.Source != "/dev/vda1" ||
		!slices.Equal(root.Options, []string{"rw", "relatime"}) || !slices.Equal(root.SuperOptions, []string{"rw"}) {
		t.Errorf("findMount(/) = %+v, %v", root, ok)
	}
	if m, ok := findMount(ms, "/mnt/with space"); !ok || m.Source != `my\source` || m.FSType != "tmpfs" {
		t.Errorf("escaped mount = %+v, %v; want point and source unescaped", m, ok)
	}
	if m, _ := findMount(ms, "/checkpoint"); m.FSType != "tmpfs" {
		t.Errorf("findMount(/checkpoint) = %+v; want the tmpfs mounted last, on top", m)
	}
	if _, ok := findMount(ms, "/nowhere"); ok {
		t.Errorf("findMount(/nowhere) found a mount")
	}
}

func TestParseMountinfoRejectsGarbage(t *testing.T) {
	for _, in := range []string{"22 1 254:1 / / rw shared:1 ext4 /dev/vda1 rw\n", "1 2 3 - ext4\n"} {
		if _, err := parseMountinfo(strings.NewReader(in)); err == nil {
			t.Errorf("parseMountinfo(%q) = nil error", in)
		}
	}
}

func TestParseMountinfoOfThisProcess(t *testing.T) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo here: %v", err)
	}
	defer f.Close()
	ms, err := parseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := findMount(ms, "/proc"); !ok || m.FSType != "proc" {
		t.Errorf("findMount(/proc) = %+v, %v; want the proc filesystem", m, ok)
	}
}

const sampleStatusJSON = `{"components":[
 {"name":"kernel","type":"service","state":"ACTIVE","pid":0,"uptime_ms":0,"restarts":0,"requires":[],"provides":["kernel","proc"]},
 {"name":"test-echo-server","type":"service","state":"ACTIVE","pid":214,"uptime_ms":4100,"restarts":1,"requires":["network.configured"],"provides":["test.echo"],
  "health":"ok","health_checks":4,"health_failures":0,"last_check_ms_ago":1200,"health_reason":""},
 {"name":"yakimg-runner","type":"oneshot","state":"STARTING","pid":230,"uptime_ms":900,"restarts":1,"requires":[],"provides":[]}]}`

const sampleStatusTable = `COMPONENT            STATE      PID     UPTIME  RESTARTS HEALTH   LAST CHECK
────────────────────────────────────────────────────────────────────────────
kernel               ACTIVE     -       0s      0        -        -
test-echo-server     ACTIVE     214     4s      1        OK       1s ago
yakimg-runner        STARTING   230     0s      1        -        -
────────────────────────────────────────────────────────────────────────────
Summary: 2 active, 0 degraded, 1 starting, 0 failed, 3 total
`

func TestParseStatus(t *testing.T) {
	cs, err := parseStatus([]byte(sampleStatusJSON))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := findComponent(cs, "test-echo-server")
	if !ok || c.State != "ACTIVE" || c.PID != 214 || c.UptimeMS != 4100 || c.Restarts != 1 ||
		!slices.Equal(c.Requires, []string{"network.configured"}) || !slices.Equal(c.Provides, []string{"test.echo"}) {
		t.Errorf("test-echo-server = %+v, %v", c, ok)
	}
	if len(cs) != 3 {
		t.Errorf("parseStatus found %d components; want 3", len(cs))
	}
	for _, bad := range []string{``, `{}`, `{"components":null}`, `[]`, `{"components":[{"name":"x"}]}`, `{"components":[{"state":"ACTIVE"}]}`} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q) = nil error", bad)
		}
	}
	if cs, err := parseStatus([]byte(`{"components":[]}`)); err != nil || len(cs) != 0 {
		t.Errorf("parseStatus(empty list) = %v, %v", cs, err)
	}
}

func TestCheckStatusTable(t *testing.T) {
	cs, err := parseStatus([]byte(sampleStatusJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatusTable(sampleStatusTable, cs, "test-echo-server"); err != nil {
		t.Errorf("checkStatusTable(sample) = %v", err)
	}
	for _, tc := range []struct{ name, table, want string }{
		{"header", strings.Replace(sampleStatusTable, "UPTIME  RESTARTS", "UPTIME RESTARTS", 1), "header"},
		{"no health columns", strings.Replace(sampleStatusTable, " HEALTH   LAST CHECK", "", 1), "header"},
		{"not active", strings.Replace(sampleStatusTable, "test-echo-server     ACTIVE ", "test-echo-server     FAILED ", 1), "FAILED"},
		{"no row", strings.Replace(sampleStatusTable, "test-echo-server", "other-server    ", 1), "no row"},
		{"summary", strings.Replace(sampleStatusTable, "Summary: 2 active", "2 active", 1), "summary"},
		{"total", strings.Replace(sampleStatusTable, "3 total", "4 total", 1), "4 total"},
		{"no rule", strings.Replace(sampleStatusTable, strings.Repeat("─", 76)+"\nkernel", "kernel", 1), "rule"},
		{"empty", "", "header"},
	} {
		err := checkStatusTable(tc.table, cs, "test-echo-server")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: checkStatusTable = %v; want an error about %q", tc.name, err, tc.want)
		}
	}
	if err := checkStatusTable(sampleStatusTable, cs[:2], "test-echo-server"); err == nil {
		t.Errorf("checkStatusTable with fewer JSON components than rows = nil error")
	}
}

// statusGraphctl fakes graphctl answering both status forms.
func statusGraphctl(t *testing.T, json, table string) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "status.json"), json)
	writeFile(t, filepath.Join(dir, "status.txt"), table)
	return fakeGraphctl(t, fmt.Sprintf(`case "$*" in
"--json status") cat %s/status.json ;;
"status") cat %s/status.txt ;;
*) echo "Unknown command: $*" >&2; exit 1 ;;
esac
`, dir, dir))
}

func runSmokeCase(name string, e env, timeout time.Duration) report.Case {
	i := slices.IndexFunc(smoke.Cases, func(c Case) bool { return c.Name == name })
	c := smoke.Cases[i]
	if timeout != 0 {
		c.Timeout = timeout
	}
	return runCase(context.Background(), e, c)
}

func TestComponentsActive(t *testing.T) {
	g := statusGraphctl(t, sampleStatusJSON, sampleStatusTable)
	if c := runSmokeCase("components-active", env{graphctl: g}, 0); c.Status != report.Pass {
		t.Errorf("components-active = %+v; want pass", c)
	}

	starting := strings.Replace(sampleStatusJSON, `"test-echo-server","type":"service","state":"ACTIVE"`, `"test-echo-server","type":"service","state":"STARTING"`, 1)
	g = statusGraphctl(t, starting, sampleStatusTable)
	c := runSmokeCase("components-active", env{graphctl: g}, 600*time.Millisecond)
	if c.Status != report.Fail || !strings.Contains(c.Message, "test-echo-server is STARTING") {
		t.Errorf("components-active with the server STARTING = %+v; want fail saying so", c)
	}

	g = statusGraphctl(t, sampleStatusJSON, strings.Replace(sampleStatusTable, "Summary:", "Totals:", 1))
	if c := runSmokeCase("components-active", env{graphctl: g}, 0); c.Status != report.Fail || !strings.Contains(c.Message, "summary") {
		t.Errorf("components-active with a broken table = %+v; want fail", c)
	}

	c = runSmokeCase("components-active", env{graphctl: filepath.Join(t.TempDir(), "absent")}, 0)
	if c.Status != report.Fail || !strings.Contains(c.Message, "no such file") || strings.Contains(c.Message, "not ACTIVE after") {
		t.Errorf("components-active without graphctl = %+v; want a fail without polling", c)
	}

	g = fakeGraphctl(t, "echo 'Error: cannot connect to /run/graph-resolver.sock' >&2; exit 1\n")
	c = runSmokeCase("components-active", env{graphctl: g}, 600*time.Millisecond)
	if c.Status != report.Fail || !strings.Contains(c.Message, "cannot connect") {
		t.Errorf("components-active with graphctl failing = %+v; want fail with its error", c)
	}
}

func TestGraphctlRejectsUnknown(t *testing.T) {
	for _, tc := range []struct {
		name, script, status, msg string
	}{
		{"rejects", "echo \"Unknown command: $*\" >&2; exit 1\n", report.Pass, ""},
		{"accepts", "echo ok\n", report.Fail, "exited 0"},
		{"silent", "exit 3\n", report.Fail, "exited 3"},
	} {
		c := runSmokeCase("graphctl-rejects-unknown", env{graphctl: fakeGraphctl(t, tc.script)}, 0)
		if c.Status != tc.status || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s: %+v; want %s with %q", tc.name, c, tc.status, tc.msg)
		}
	}
	c := runSmokeCase("graphctl-rejects-unknown", env{graphctl: filepath.Join(t.TempDir(), "absent")}, 0)
	if c.Status != report.Fail || !strings.Contains(c.Message, "no such file") {
		t.Errorf("missing graphctl: %+v; want fail because it did not run", c)
	}
}

// echoServer serves one connection per accept, answering each line with
// answer(line).
func serveEcho(t *testing.T, answer func(string) string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					fmt.Fprintf(conn, "%s\n", answer(sc.Text()))
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestEchoRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := serveEcho(t, func(l string) string { return "v1 " + l })
	if v, err := echoRoundTrip(ctx, addr); err != nil || v != "v1" {
		t.Errorf("echoRoundTrip(versioned server) = %q, %v; want v1", v, err)
	}
	for name, answer := range map[string]func(string) string{
		"plain echo": func(l string) string { return l },
		"old format": func(l string) string { return "ECHO: " + l },
		"wrong line": func(l string) string { return "v1 " + strings.ToUpper(l) },
	} {
		if v, err := echoRoundTrip(ctx, serveEcho(t, answer)); err == nil {
			t.Errorf("echoRoundTrip(%s) = %q, nil; want an error", name, v)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := echoRoundTrip(ctx, closed); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("echoRoundTrip(nothing listening) = %v; want a connect error", err)
	}
}

func TestEchoRoundTripHonoursDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Accepted by the kernel, never answered.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := echoRoundTrip(ctx, l.Addr().String()); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("echoRoundTrip(silent server) = %v; want a timeout", err)
	}
}

func TestWriteReadBack(t *testing.T) {
	dir := t.TempDir()
	if err := writeReadBack(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("writeReadBack left %v behind", left)
	}
	if err := writeReadBack(filepath.Join(dir, "absent")); err == nil {
		t.Errorf("writeReadBack(missing dir) = nil error")
	}
}

// The host is not the guest: pid1-is-graph-resolver must say so.
func TestPID1OnHost(t *testing.T) {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Skipf("cannot read PID 1's name: %v", err)
	}
	if strings.TrimSpace(string(comm)) == "graph-resolver" {
		t.Skip("PID 1 here is graph-resolver; this test needs a host that is not a guest")
	}
	c := runSmokeCase("pid1-is-graph-resolver", env{}, 0)
	if c.Status != report.Fail || !strings.Contains(c.Message, strings.TrimSpace(string(comm))) {
		t.Errorf("pid1-is-graph-resolver on the host = %+v; want fail naming %q", c, comm)
	}
}
