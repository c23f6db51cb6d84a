package suites

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// basic proves the image's test services came up and work, as an operator
// would see them: every component that can come up did, the capabilities
// they provide are up, each service answers on its port, and graphctl shows
// their logs. It changes nothing (stopping and restarting belong to other
// suites).
var basic = Suite{
	Name: "basic",
	Cases: []Case{
		{Name: "components-up", Timeout: 60 * time.Second, Run: componentsUp},
		{Name: "status-table-matches-json", Run: statusTableMatchesJSON},
		{Name: "capabilities-up", Run: capabilitiesUp},
		{Name: "readiness-methods", Timeout: 20 * time.Second, Run: readinessMethods},
		{Name: "web-keep-alive", Timeout: 15 * time.Second, Run: webKeepAlive},
		{Name: "database-set-get", Timeout: 15 * time.Second, Run: databaseSetGet},
		{Name: "echo-log-tail", Timeout: 20 * time.Second, Run: echoLogTail},
		{Name: "monitor-sees-services", Timeout: 40 * time.Second, Run: monitorSeesServices},
		{Name: "graphctl-missing-socket", Run: graphctlMissingSocket},
	},
}

// The image's components (components/*.toml) and where they settle. The
// cycle members and test-orphan never start; the suite runner is a oneshot
// still running while it asks.
const (
	webServer  = "test-web-server"
	webAddr    = "127.0.0.1:8080"
	database   = "test-database"
	dbAddr     = "127.0.0.1:7071"
	monitor    = "test-monitor"
	cycleA     = "test-cycle-a"
	cycleB     = "test-cycle-b"
	orphan     = "test-orphan"
	runnerName = "yakimg-suites"
	neverCap   = "test.never-provided"
	logDir     = "/run/graph"
	// settleLimit bounds the first wait of a suite for the components to
	// come up; later cases wait only settledRecheck, so that a system that
	// never settles fails each case quickly instead of each waiting again.
	settleLimit    = 45 * time.Second
	settledRecheck = 5 * time.Second
)

type expectation struct{ name, state string }

// settled lists the components that come up, in dependency order.
var settled = []expectation{
	{"kernel", "ACTIVE"},
	{"network-setup", "DONE"},
	{"storage-setup", "DONE"},
	{"files-setup", "DONE"},
	{echoServer, "ACTIVE"},
	{webServer, "ACTIVE"},
	{database, "ACTIVE"},
	{monitor, "ACTIVE"},
}

// services run a binary of their own name from /usr/local/bin.
var services = []string{echoServer, webServer, database, monitor}

// waitSettled waits until every component of settled is in its state.
func waitSettled(t *T, limit time.Duration) []component {
	return waitStatus(t, limit, "the test components up", func(cs []component) string {
		var missing []string
		for _, e := range settled {
			switch c, ok := findComponent(cs, e.name); {
			case !ok:
				missing = append(missing, e.name+" is not in the status")
			case c.State != e.state:
				missing = append(missing, fmt.Sprintf("%s is %s, not %s%s", e.name, c.State, e.state, reason(c)))
			}
		}
		return strings.Join(missing, "; ")
	})
}

func reason(c component) string {
	if c.Reason == "" {
		return ""
	}
	return " (" + c.Reason + ")"
}

func componentsUp(t *T) {
	comps := waitSettled(t, settleLimit)
	var problems []string
	for _, e := range settled {
		if c, _ := findComponent(comps, e.name); c.Restarts != 0 {
			problems = append(problems, fmt.Sprintf("%s was restarted %d times", c.Name, c.Restarts))
		}
	}
	for _, name := range services {
		c, _ := findComponent(comps, name)
		want := "/usr/local/bin/" + name
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.PID))
		switch {
		case c.PID <= 0:
			problems = append(problems, fmt.Sprintf("%s is ACTIVE without a pid", name))
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: pid %d: %v", name, c.PID, err))
		case exe != want:
			problems = append(problems, fmt.Sprintf("%s: pid %d runs %s, not %s", name, c.PID, exe, want))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%s", strings.Join(problems, "; "))
	}
}

// statusRow is one row of the human status table.
type statusRow struct{ name, state, pid, health, lastCheck string }

// lastCheckAgo is a LAST CHECK other than "-": "5s ago", "3m4s ago", "1h2m ago".
var lastCheckAgo = regexp.MustCompile(`^(\d+s|\d+m\d+s|\d+h\d+m) ago$`)

var summaryCounts = regexp.MustCompile(`^Summary: (\d+) active, (\d+) degraded, (\d+) starting, (\d+) failed, (\d+) total$`)

// parseStatusTable splits the human status table (yakiros-reference §7.3)
// into rows and the five counts of its summary line.
func parseStatusTable(out string) ([]statusRow, [5]int, error) {
	var counts [5]int
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	isRule := func(l string) bool { return l != "" && strings.Trim(l, "─") == "" }
	if len(lines) < 4 || strings.TrimRight(lines[0], " ") != statusHeader || !isRule(lines[1]) {
		return nil, counts, fmt.Errorf("no header and rule at the top of %q", out)
	}
	end := slices.IndexFunc(lines[2:], isRule)
	if end < 0 || 2+end+2 != len(lines) {
		return nil, counts, fmt.Errorf("no closing rule followed by exactly one summary line in %q", out)
	}
	var rows []statusRow
	for _, l := range lines[2 : 2+end] {
		// LAST CHECK is "-" or "<duration> ago", the only value with a space.
		f := strings.Fields(l)
		if len(f) == 8 {
			f = append(f[:6], f[6]+" "+f[7])
		}
		if len(f) != 7 || f[6] != "-" && !lastCheckAgo.MatchString(f[6]) {
			return nil, counts, fmt.Errorf("row %q does not have 7 columns ending in LAST CHECK (- or <duration> ago)", l)
		}
		rows = append(rows, statusRow{f[0], f[1], f[2], f[5], f[6]})
	}
	m := summaryCounts.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		return nil, counts, fmt.Errorf("summary line is %q", lines[len(lines)-1])
	}
	for i := range counts {
		counts[i], _ = strconv.Atoi(m[i+1])
	}
	return rows, counts, nil
}

// compareStatus checks the human table against the JSON components: the
// same components in the same order and states, and a summary that counts
// them right (active includes DONE, starting includes READY_WAIT).
func compareStatus(out string, comps []component) error {
	rows, counts, err := parseStatusTable(out)
	if err != nil {
		return err
	}
	if len(rows) != len(comps) {
		return fmt.Errorf("the table has %d rows, --json status %d components", len(rows), len(comps))
	}
	var want [5]int
	for i, c := range comps {
		r := rows[i]
		pid := "-"
		if c.PID > 0 {
			pid = strconv.Itoa(c.PID)
		}
		if r.name != c.Name || r.state != c.State || r.pid != pid {
			return fmt.Errorf("row %d is %s %s pid %s; --json status says %s %s pid %s", i+1, r.name, r.state, r.pid, c.Name, c.State, pid)
		}
		if h := healthColumn(c); r.health != h || (r.lastCheck == "-") != (c.LastCheckMSAgo < 0) {
			return fmt.Errorf("row %d (%s) shows health %s, last check %s; --json status says %s (health %q, last check %d ms ago)",
				i+1, r.name, r.health, r.lastCheck, h, c.Health, c.LastCheckMSAgo)
		}
		switch c.State {
		case "ACTIVE", "DONE":
			want[0]++
		case "DEGRADED":
			want[1]++
		case "STARTING", "READY_WAIT":
			want[2]++
		case "FAILED":
			want[3]++
		}
	}
	want[4] = len(comps)
	if counts != want {
		return fmt.Errorf("summary counts %v; the components give %v (active, degraded, starting, failed, total)", counts, want)
	}
	return nil
}

// healthColumn is what status's HEALTH column shows for c.
func healthColumn(c component) string {
	switch c.Health {
	case "":
		return "-"
	case "ok":
		return "OK"
	case "failing":
		return fmt.Sprintf("FAIL(%d)", c.HealthFailures)
	}
	return strings.ToUpper(c.Health)
}

func statusTableMatchesJSON(t *T) {
	waitSettled(t, settledRecheck)
	// Between the two calls only the runner's own state could change, and
	// it does not: it stays STARTING until it exits.
	out, _, err := t.graphctl("--json", "status")
	if err != nil {
		t.Fatalf("%v", err)
	}
	comps, err := parseStatus([]byte(out))
	if err != nil {
		t.Fatalf("%v", err)
	}
	table, _, err := t.graphctl("status")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := compareStatus(table, comps); err != nil {
		t.Fatalf("graphctl status: %v", err)
	}
}

// capability is one entry of `graphctl --json caps`.
type capability struct {
	Name      string   `json:"name"`
	Status    string   `json:"status"`
	Providers []string `json:"providers"`
}

func parseCaps(data []byte) ([]capability, error) {
	var doc struct {
		Capabilities *[]capability `json:"capabilities"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode caps: %w", err)
	}
	if doc.Capabilities == nil {
		return nil, errors.New("decode caps: no \"capabilities\" list")
	}
	return *doc.Capabilities, nil
}

// provided is what the test components provide, and by whom.
var provided = []struct{ cap, provider string }{
	{"network.configured", "network-setup"},
	{"storage", "storage-setup"},
	{"files", "files-setup"},
	{"test.echo", echoServer},
	{"test.web", webServer},
	{"test.database", database},
	{"test.monitor", monitor},
}

var capsTotal = regexp.MustCompile(`^Total: (\d+) capabilities \((\d+) up, (\d+) down\)$`)

func capabilitiesUp(t *T) {
	waitSettled(t, settledRecheck)
	out, _, err := t.graphctl("--json", "caps")
	if err != nil {
		t.Fatalf("%v", err)
	}
	caps, err := parseCaps([]byte(out))
	if err != nil {
		t.Fatalf("%v", err)
	}
	byName := map[string]capability{}
	for _, c := range caps {
		byName[c.Name] = c
	}
	var problems []string
	for _, p := range provided {
		c, ok := byName[p.cap]
		if !ok || c.Status != "UP" || !slices.Equal(c.Providers, []string{p.provider}) {
			problems = append(problems, fmt.Sprintf("%s is %+v; want UP from %s", p.cap, c, p.provider))
		}
	}
	for _, name := range []string{neverCap, "test.cycle-a", "test.cycle-b", "test.orphan"} {
		if c, ok := byName[name]; ok && c.Status != "DOWN" {
			problems = append(problems, fmt.Sprintf("%s is %s from %v, though nothing that provides it can run", name, c.Status, c.Providers))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%s", strings.Join(problems, "; "))
	}

	// The human table shows the same, one row per capability.
	table, _, err := t.graphctl("caps")
	if err != nil {
		t.Fatalf("%v", err)
	}
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != len(caps)+4 {
		t.Fatalf("graphctl caps has %d lines; want a header, two rules, a total and %d rows:\n%s", len(lines), len(caps), table)
	}
	rows := map[string][]string{}
	for _, l := range lines[2 : len(lines)-2] {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f[1:]
		}
	}
	for _, p := range provided {
		if r := rows[p.cap]; !slices.Equal(r, []string{"UP", p.provider}) {
			t.Fatalf("graphctl caps shows %s as %q; want UP %s", p.cap, r, p.provider)
		}
	}
	up := 0
	for _, c := range caps {
		if c.Status == "UP" {
			up++
		}
	}
	m := capsTotal.FindStringSubmatch(lines[len(lines)-1])
	if want := fmt.Sprintf("Total: %d capabilities (%d up, %d down)", len(caps), up, len(caps)-up); m == nil || m[0] != want {
		t.Fatalf("graphctl caps ends with %q; want %q", lines[len(lines)-1], want)
	}
}

// readinessStatus is one entry of `graphctl --json readiness`.
type readinessStatus struct {
	Name      string `json:"name"`
	Method    string `json:"method"`
	TimeoutMS int64  `json:"timeout_ms"`
	State     string `json:"state"`
	Status    string `json:"status"` // the last STATUS= a notify service sent
	Reason    string `json:"reason"`
}

func parseReadiness(data []byte) ([]readinessStatus, error) {
	var doc struct {
		Components *[]readinessStatus `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode readiness: %w", err)
	}
	if doc.Components == nil {
		return nil, errors.New("decode readiness: no \"components\" list")
	}
	return *doc.Components, nil
}

// readinessMethod is how a service tells graph-resolver it is ready
// (components/*.toml): each method the image can exercise, once.
type readinessMethod struct {
	name, method string
	timeout      time.Duration
	status       string // what a notify service says in STATUS=
}

var readinessMethodsWant = []readinessMethod{
	{echoServer, "notify", 20 * time.Second, "listening on " + echoAddr},
	{webServer, "command", 20 * time.Second, ""},
	{database, "file", 30 * time.Second, ""},
}

// readinessProblems says what in `graphctl --json readiness` falls short
// of every service of readinessMethodsWant being ready by its method.
func readinessProblems(rs []readinessStatus) string {
	var problems []string
	for _, w := range readinessMethodsWant {
		i := slices.IndexFunc(rs, func(r readinessStatus) bool { return r.Name == w.name })
		if i < 0 {
			problems = append(problems, w.name+" is not listed")
			continue
		}
		r := rs[i]
		if r.Method != w.method || r.TimeoutMS != w.timeout.Milliseconds() {
			problems = append(problems, fmt.Sprintf("%s has method %s, timeout %dms; want %s, %dms", w.name, r.Method, r.TimeoutMS, w.method, w.timeout.Milliseconds()))
		}
		if r.State != "ACTIVE" {
			problems = append(problems, fmt.Sprintf("%s is %s, not ACTIVE (reason %q)", w.name, r.State, r.Reason))
		}
		if r.Status != w.status {
			problems = append(problems, fmt.Sprintf("%s has status %q; want %q", w.name, r.Status, w.status))
		}
	}
	return strings.Join(problems, "; ")
}

var readinessSummary = regexp.MustCompile(`^Summary: (\d+) ready, (\d+) waiting, (\d+) failed/timeout$`)

// readinessText checks the human `graphctl readiness` layout: the header,
// a READY line for each service of readinessMethodsWant and a summary
// counting at least those ready.
func readinessText(out string) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != "Readiness Status:" {
		return fmt.Errorf("no \"Readiness Status:\" header at the top of %q", out)
	}
	for _, w := range readinessMethodsWant {
		want := fmt.Sprintf("  %s: method=%s, timeout=%ds [READY]", w.name, w.method, int(w.timeout.Seconds()))
		if !slices.Contains(lines, want) {
			return fmt.Errorf("no line %q in %q", want, out)
		}
	}
	m := readinessSummary.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		return fmt.Errorf("the last line is %q; want \"Summary: N ready, N waiting, N failed/timeout\"", lines[len(lines)-1])
	}
	if ready, _ := strconv.Atoi(m[1]); ready < len(readinessMethodsWant) {
		return fmt.Errorf("%q counts fewer than the %d services ready", m[0], len(readinessMethodsWant))
	}
	return nil
}

// readinessNow asks `graphctl --json readiness` once and returns what falls
// short, "" if nothing.
func readinessNow(t *T) string {
	out, _, err := t.graphctl("--json", "readiness")
	switch {
	case err != nil && t.ctx.Err() == nil:
		t.Fatalf("%v", err)
	case err != nil:
		return err.Error()
	}
	rs, err := parseReadiness([]byte(out))
	if err != nil {
		t.Fatalf("%v", err)
	}
	return readinessProblems(rs)
}

// readinessMethods checks that the services declaring readiness by notify,
// command and file each became ready that way, as `graphctl readiness`
// shows it in JSON and as text.
func readinessMethods(t *T) {
	waitSettled(t, settledRecheck)
	start := time.Now()
	var last string
	for {
		seen := readinessNow(t)
		if seen == "" {
			break
		}
		// A call cut short by the deadline says less than the one before.
		if last == "" || t.ctx.Err() == nil {
			last = seen
		}
		if time.Since(start) >= settledRecheck || t.ctx.Err() != nil {
			t.Fatalf("graphctl --json readiness for %v: %s", time.Since(start).Round(time.Millisecond), last)
		}
		select {
		case <-t.ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	out, _, err := t.graphctl("readiness")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := readinessText(out); err != nil {
		t.Fatalf("graphctl readiness: %v", err)
	}
}

func webKeepAlive(t *T) {
	waitSettled(t, settledRecheck)
	version, err := httpKeepAlive(t.ctx, webAddr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("%s %s answered twice on one connection", webServer, version)
}

// webVersion is the body of test-web-server's GET /.
var webVersion = regexp.MustCompile(`^test-web-server ([A-Za-z0-9][A-Za-z0-9._+-]*)\n$`)

// httpKeepAlive sends GET / and then GET /health on one connection to the
// web server at addr, and returns the version GET / answered with. The
// second request fails if the server closed the connection after the
// first.
func httpKeepAlive(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", webServer, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	get := func(path string) (*http.Response, string, error) {
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: yakimg-basic\r\n\r\n", path, addr); err != nil {
			return nil, "", fmt.Errorf("send GET %s: %w", path, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return nil, "", fmt.Errorf("read the response to GET %s: %w", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return nil, "", fmt.Errorf("read the body of GET %s: %w", path, err)
		}
		return resp, string(body), nil
	}
	resp, body, err := get("/")
	if err != nil {
		return "", err
	}
	m := webVersion.FindStringSubmatch(body)
	switch {
	case resp.StatusCode != http.StatusOK || m == nil:
		return "", fmt.Errorf("GET / answered %s %q; want 200 and \"test-web-server <version>\"", resp.Status, body)
	case resp.ProtoMajor != 1 || resp.ProtoMinor != 1 || resp.Close:
		return "", fmt.Errorf("GET / answered %s with close=%v; want HTTP/1.1 keeping the connection open", resp.Proto, resp.Close)
	}
	resp, body, err = get("/health")
	if err != nil {
		return "", fmt.Errorf("second request on the same connection: %w", err)
	}
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		return "", fmt.Errorf("GET /health answered %s %q; want 200 ok", resp.Status, body)
	}
	return m[1], nil
}

func databaseSetGet(t *T) {
	waitSettled(t, settledRecheck)
	if err := dbRoundTrip(t.ctx, dbAddr); err != nil {
		t.Fatalf("%v", err)
	}
}

// dbRoundTrip stores a random value under a random key, reads it back on
// the same connection and on a new one, and checks that an unknown key is
// not found.
func dbRoundTrip(ctx context.Context, addr string) error {
	key := "basic-" + rand.Text()
	value := "value " + rand.Text() + " with spaces"
	first, err := dialLines(ctx, addr)
	if err != nil {
		return err
	}
	defer first.Close()
	if err := first.expect("SET "+key+" "+value, "OK"); err != nil {
		return err
	}
	if err := first.expect("GET "+key, "VALUE "+value); err != nil {
		return err
	}
	second, err := dialLines(ctx, addr)
	if err != nil {
		return err
	}
	defer second.Close()
	if err := second.expect("GET "+key, "VALUE "+value); err != nil {
		return fmt.Errorf("on a second connection: %w", err)
	}
	return second.expect("GET "+key+"-unset", "NOT_FOUND")
}

// lineConn is a line-per-request connection.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLines(ctx context.Context, addr string) (*lineConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return &lineConn{conn, bufio.NewReader(conn)}, nil
}

func (c *lineConn) expect(req, want string) error {
	if _, err := fmt.Fprintf(c, "%s\n", req); err != nil {
		return fmt.Errorf("send %q to %s: %w", req, c.RemoteAddr(), err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%q to %s: read reply (got %q): %w", req, c.RemoteAddr(), got, err)
	}
	if got = strings.TrimRight(got, "\r\n"); got != want {
		return fmt.Errorf("%q to %s answered %q; want %q", req, c.RemoteAddr(), got, want)
	}
	return nil
}

// logTail is `graphctl log <component> <n>` parsed: the lines it shows.
func parseLogTail(out, name string, n int) ([]string, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := fmt.Sprintf("Recent logs for component '%s' (last %d lines):", name, n)
	if len(lines) < 2 || lines[0] != header || lines[1] != strings.Repeat("─", 48) {
		return nil, fmt.Errorf("want %q and a rule of 48 ─ at the top of %q", header, out)
	}
	return lines[2:], nil
}

// echoLogTail makes the echo server log more lines than the reference's
// log command could see past (it read only the first 100), the last of
// them one only this case can cause (a client disconnecting from a port it
// chose), and checks that `graphctl log` shows exactly the last lines of
// the log file, that one among them.
func echoLogTail(t *T) {
	waitSettled(t, settledRecheck)
	var mark string
	for range 60 { // two lines each
		addr, err := touchEcho(t.ctx, echoAddr)
		if err != nil {
			t.Fatalf("%v", err)
		}
		mark = fmt.Sprintf("client %s disconnected", addr)
	}
	hasMark := func(l string) bool { return strings.Contains(l, mark) }
	const n = 5
	var shown []string
	for {
		out, _, err := t.graphctl("log", echoServer, strconv.Itoa(n))
		if err != nil {
			t.Fatalf("%v", err)
		}
		if shown, err = parseLogTail(out, echoServer, n); err != nil {
			t.Fatalf("graphctl log: %v", err)
		}
		if slices.ContainsFunc(shown, hasMark) {
			break
		}
		select {
		case <-t.ctx.Done():
			t.Fatalf("graphctl log %s %d never showed %q; last showed:\n%s", echoServer, n, mark, strings.Join(shown, "\n"))
		case <-time.After(250 * time.Millisecond):
		}
	}
	if len(shown) != n {
		t.Fatalf("graphctl log %s %d showed %d lines:\n%s", echoServer, n, len(shown), strings.Join(shown, "\n"))
	}
	// The monitor may have connected since, so the file may have grown:
	// the lines shown must be consecutive lines of it, past line 100.
	path := filepath.Join(logDir, echoServer+".log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	file := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if at := indexRun(file, shown); at < 0 {
		t.Fatalf("the lines graphctl log showed are not consecutive lines of %s:\n%s", path, strings.Join(shown, "\n"))
	} else if at+n <= 100 {
		t.Fatalf("graphctl log showed lines %d–%d of the %d of %s, not its end", at+1, at+n, len(file), path)
	}
}

// touchEcho connects to the echo server, sends a line, reads the answer,
// hangs up and returns the local address it used.
func touchEcho(ctx context.Context, addr string) (string, error) {
	conn, err := dialLines(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := fmt.Fprintln(conn, "yakimg-basic"); err != nil {
		return "", fmt.Errorf("send to %s: %w", addr, err)
	}
	if _, err := conn.r.ReadString('\n'); err != nil {
		return "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return conn.LocalAddr().String(), nil
}

// indexRun returns where run occurs as consecutive elements of s, the last
// occurrence, or -1.
func indexRun(s, run []string) int {
	for i := len(s) - len(run); i >= 0; i-- {
		if slices.Equal(s[i:i+len(run)], run) {
			return i
		}
	}
	return -1
}

// monitorRound is a line of test-monitor's log on which it reached all three
// services.
var monitorRound = regexp.MustCompile(`round \d+: echo UP \(v1 monitor\), web UP \(ok\), database UP \(PONG [^)]+\)$`)

func monitorSeesServices(t *T) {
	waitSettled(t, settledRecheck)
	var shown []string
	for {
		out, _, err := t.graphctl("log", monitor, "20")
		if err != nil {
			t.Fatalf("%v", err)
		}
		if shown, err = parseLogTail(out, monitor, 20); err != nil {
			t.Fatalf("graphctl log: %v", err)
		}
		for _, l := range shown {
			if monitorRound.MatchString(l) {
				t.Logf("%s", l)
				return
			}
		}
		select {
		case <-t.ctx.Done():
			t.Fatalf("%s never logged reaching all three services; its last lines:\n%s", monitor, strings.Join(shown, "\n"))
		case <-time.After(time.Second):
		}
	}
}

// graphctlMissingSocket checks that graphctl pointed at a socket nobody
// listens on says so in one line and exits 1.
func graphctlMissingSocket(t *T) {
	sock := filepath.Join(os.TempDir(), "yakimg-basic-"+rand.Text()+".sock")
	stdout, stderr, err := t.graphctl("--socket", sock, "status")
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("graphctl --socket %s status exited 0", sock)
	case !errors.As(err, &exit):
		t.Fatalf("%v", err)
	case exit.ExitCode() != 1:
		t.Fatalf("graphctl --socket %s status exited %d; want 1", sock, exit.ExitCode())
	case stdout != "":
		t.Fatalf("graphctl printed %q on stdout; want nothing", stdout)
	case strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, sock):
		t.Fatalf("graphctl said %q; want one line naming %s", stderr, sock)
	}
}
