package suites

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// smoke proves the image booted into YakirOS and its basics work: PID 1,
// graphctl, one service reachable on its port, the root and checkpoint
// filesystems.
var smoke = Suite{
	Name: "smoke",
	Cases: []Case{
		{Name: "pid1-is-graph-resolver", Run: pid1IsGraphResolver},
		{Name: "components-active", Timeout: 40 * time.Second, Run: componentsActive},
		{Name: "graphctl-rejects-unknown", Run: graphctlRejectsUnknown},
		{Name: "echo-service-answers", Timeout: 15 * time.Second, Run: echoServiceAnswers},
		{Name: "checkpoint-partition-writable", Run: checkpointPartitionWritable},
		{Name: "root-is-ext4-rw", Run: rootIsExt4RW},
		{Name: "criu-check", Timeout: 60 * time.Second, Run: criuCheck},
	},
}

const (
	resolverPath = "/sbin/graph-resolver"
	echoServer   = "test-echo-server"
	echoAddr     = "127.0.0.1:7070"
	checkpointFS = "/checkpoint"
	criuPath     = "/usr/sbin/criu"
	activeWithin = 20 * time.Second
)

func pid1IsGraphResolver(t *T) {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		t.Fatalf("read PID 1's name: %v", err)
	}
	if got := strings.TrimSpace(string(comm)); got != "graph-resolver" {
		t.Fatalf("PID 1 is %q; want graph-resolver", got)
	}
	exe, err := os.Readlink("/proc/1/exe")
	if err != nil {
		t.Fatalf("read PID 1's executable: %v", err)
	}
	// /sbin may be a symlink (merged /usr), so compare files, not names.
	running, err := os.Stat("/proc/1/exe")
	if err != nil {
		t.Fatalf("PID 1's executable %s: %v", exe, err)
	}
	installed, err := os.Stat(resolverPath)
	if err != nil {
		t.Fatalf("stat %s: %v", resolverPath, err)
	}
	if !os.SameFile(running, installed) {
		t.Fatalf("PID 1 runs %s, which is not %s", exe, resolverPath)
	}
}

func componentsActive(t *T) {
	comps := waitState(t, echoServer, "ACTIVE", activeWithin)
	table, _, err := t.graphctl("status")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := checkStatusTable(table, comps, echoServer); err != nil {
		t.Fatalf("graphctl status: %v", err)
	}
}

// waitState polls `graphctl --json status` until component name is in
// state want, and returns the components seen then.
func waitState(t *T, name, want string, limit time.Duration) []component {
	return waitStatus(t, limit, name+" "+want, func(cs []component) string {
		switch c, ok := findComponent(cs, name); {
		case !ok:
			return name + " is not in the status"
		case c.State != want:
			return name + " is " + c.State
		}
		return ""
	})
}

// waitStatus polls `graphctl --json status` until pending returns "" for
// the components, and returns them. goal describes what is awaited, and
// pending what is still missing; after limit the case fails with both.
func waitStatus(t *T, limit time.Duration, goal string, pending func([]component) string) []component {
	start := time.Now()
	var last string
	for polls := 1; ; polls++ {
		comps, seen := pollStatus(t, pending)
		if comps != nil {
			if polls > 1 {
				t.Logf("%s after %v", goal, time.Since(start).Round(time.Millisecond))
			}
			return comps
		}
		// A call cut short by the deadline says less than the one before.
		if last == "" || t.ctx.Err() == nil {
			last = seen
		}
		if time.Since(start) >= limit || t.ctx.Err() != nil {
			t.Fatalf("waited %v for %s: %s", time.Since(start).Round(time.Millisecond), goal, last)
		}
		select {
		case <-t.ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pollStatus returns the components if pending has nothing to say about
// them, else what it, or graphctl, said instead.
func pollStatus(t *T, pending func([]component) string) ([]component, string) {
	out, _, err := t.graphctl("--json", "status")
	var exit *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exit) && t.ctx.Err() == nil:
		t.Fatalf("%v", err) // graphctl cannot run at all; waiting will not help
	case err != nil:
		return nil, err.Error()
	}
	comps, err := parseStatus([]byte(out))
	if err != nil {
		return nil, err.Error()
	}
	if msg := pending(comps); msg != "" {
		return nil, msg
	}
	return comps, ""
}

// statusHeader and statusSummary are the human layout of `graphctl status`
// (yakiros-reference §7.3).
const statusHeader = "COMPONENT            STATE      PID     UPTIME  RESTARTS HEALTH   LAST CHECK"

var statusSummary = regexp.MustCompile(`^Summary: (\d+) active, (\d+) degraded, (\d+) starting, (\d+) failed, (\d+) total$`)

// checkStatusTable checks the human status table: the header, a rule, one
// row per component of comps with name shown ACTIVE, a rule and a summary
// whose total matches.
func checkStatusTable(out string, comps []component, name string) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \r")
	}
	if lines[0] != statusHeader {
		return fmt.Errorf("header is %q; want %q", lines[0], statusHeader)
	}
	isRule := func(l string) bool { return l != "" && strings.Trim(l, "─") == "" }
	if len(lines) < 4 || !isRule(lines[1]) {
		return fmt.Errorf("no rule under the header in %q", out)
	}
	end := slices.IndexFunc(lines[2:], isRule)
	if end < 0 || 2+end+1 >= len(lines) {
		return fmt.Errorf("no closing rule and summary in %q", out)
	}
	rows := lines[2 : 2+end]
	found := false
	for _, r := range rows {
		f := strings.Fields(r)
		if len(f) >= 2 && f[0] == name {
			if f[1] != "ACTIVE" {
				return fmt.Errorf("row %q shows %s; want ACTIVE", r, f[1])
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no row for %s", name)
	}
	summary := lines[2+end+1]
	m := statusSummary.FindStringSubmatch(summary)
	if m == nil {
		return fmt.Errorf("summary line is %q; want %q", summary, "Summary: A active, D degraded, S starting, F failed, T total")
	}
	total, _ := strconv.Atoi(m[5])
	if total != len(rows) || total != len(comps) {
		return fmt.Errorf("summary says %d total; the table has %d rows and --json status %d components", total, len(rows), len(comps))
	}
	return nil
}

func graphctlRejectsUnknown(t *T) {
	stdout, stderr, err := t.graphctl("no-such-command")
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("graphctl no-such-command exited 0; want an error")
	case !errors.As(err, &exit):
		t.Fatalf("%v", err) // graphctl did not even run
	case !strings.Contains(stdout+stderr, "Unknown command"):
		t.Fatalf("graphctl no-such-command exited %d without saying \"Unknown command\": %q", exit.ExitCode(), stdout+stderr)
	}
}

func echoServiceAnswers(t *T) {
	version, err := echoRoundTrip(t.ctx, echoAddr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("%s answers as %s", echoServer, version)
}

// echoVersion is what a version looks like ("v1", "1.0.2"), so that a
// bare "ECHO: " prefix does not pass for one.
var echoVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// echoRoundTrip sends a random line to the echo service at addr and checks
// that it comes back as "<version> <line>"; it returns the version.
func echoRoundTrip(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", echoServer, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	line := "yakimg-smoke-" + rand.Text()
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return "", fmt.Errorf("send to %s: %w", addr, err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply from %s (got %q): %w", addr, reply, err)
	}
	reply = strings.TrimRight(reply, "\r\n")
	version, echoed, ok := strings.Cut(reply, " ")
	if !ok || !echoVersion.MatchString(version) || echoed != line {
		return "", fmt.Errorf("sent %q to %s, got %q; want \"<version> %s\"", line, addr, reply, line)
	}
	return version, nil
}

func checkpointPartitionWritable(t *T) {
	ms := selfMounts(t)
	cp, ok := findMount(ms, checkpointFS)
	if !ok {
		t.Fatalf("%s is not a mount point", checkpointFS)
	}
	if cp.FSType != "ext4" {
		t.Fatalf("%s is %s; want ext4", checkpointFS, cp.FSType)
	}
	root, ok := findMount(ms, "/")
	if !ok {
		t.Fatalf("no mount at / in mountinfo")
	}
	if cp.Dev == root.Dev {
		t.Fatalf("%s is on the root filesystem's device %s (%s)", checkpointFS, cp.Dev, cp.Source)
	}
	if err := writeReadBack(checkpointFS); err != nil {
		t.Fatalf("%v", err)
	}
}

// writeReadBack writes random data to a new file in dir, syncs it, reads it
// back, compares and removes the file.
func writeReadBack(dir string) error {
	data := make([]byte, 64<<10)
	rand.Read(data)
	f, err := os.CreateTemp(dir, ".yakimg-smoke-*")
	if err != nil {
		return fmt.Errorf("create file in %s: %w", dir, err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read back %s: %w", name, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("read back %s: %d bytes differ from the %d written", name, len(got), len(data))
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func rootIsExt4RW(t *T) {
	root, ok := findMount(selfMounts(t), "/")
	if !ok {
		t.Fatalf("no mount at / in mountinfo")
	}
	if root.FSType != "ext4" {
		t.Fatalf("/ is %s (%s); want ext4", root.FSType, root.Source)
	}
	if !slices.Contains(root.Options, "rw") || !slices.Contains(root.SuperOptions, "rw") {
		t.Fatalf("/ is mounted %s (superblock %s); want rw",
			strings.Join(root.Options, ","), strings.Join(root.SuperOptions, ","))
	}
}

func selfMounts(t *T) []mount {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	ms, err := parseMountinfo(f)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return ms
}

// criuCheck runs `criu check`, CRIU's own test of every kernel feature it
// needs. It passes only when criu and its whole library closure are in the
// image, and the prerequisites stage 1 provides (lo up, nf_tables and its
// dependencies loaded) are in place.
func criuCheck(t *T) {
	cmd := exec.CommandContext(t.ctx, criuPath, "check")
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		t.Fatalf("%s check: %v: %s", criuPath, err, lastLines(text, 8))
	}
	if !strings.Contains(text, "Looks good.") {
		t.Fatalf("%s check exited 0 without \"Looks good.\": %s", criuPath, lastLines(text, 8))
	}
	version, _ := exec.CommandContext(t.ctx, criuPath, "--version").Output()
	t.Logf("%s: %s", strings.ReplaceAll(strings.TrimSpace(string(version)), "\n", ", "), lastLines(text, 1))
}

// lastLines keeps the end of a tool's output, where its verdict is.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
