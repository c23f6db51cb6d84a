package graphctl

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"yakimg/yakiros/control"
)

// fakeResolver answers on a real control socket the way graph-resolver does.
func fakeResolver(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	calls := make(chan *control.Call)
	srv, err := control.Listen(path, calls, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case c := <-calls:
				switch c.Request.Command {
				case "status":
					c.Reply(control.OK("COMPONENT ...\n", control.StatusData{Components: []control.ComponentStatus{{Name: "kernel", State: "ACTIVE"}}}))
				case "echo":
					c.Reply(control.OK(strings.Join(c.Request.Args, " "), nil))
				case "validate":
					c.Reply(control.FailWith("graph validation failed", "✗ 1 cycle\n", map[string]bool{"valid": false}))
				default:
					c.Reply(control.Fail("Unknown command: " + c.Request.Command + "\nAvailable commands: status, echo\n"))
				}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		close(stop)
	})
	return path
}

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	sock := fakeResolver(t)
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"--socket", sock, "status"}, 0, "COMPONENT ...\n", ""},
		// Arguments after the command are the command's, even flag-like ones.
		{[]string{"--socket", sock, "echo", "--json", "b"}, 0, "--json b\n", ""},
		{[]string{"--socket", sock, "--json", "status"}, 0,
			"{\n  \"components\": [\n    {\n      \"name\": \"kernel\",\n      \"type\": \"\",\n      \"state\": \"ACTIVE\",\n" +
				"      \"pid\": 0,\n      \"uptime_ms\": 0,\n      \"restarts\": 0,\n      \"requires\": null,\n      \"provides\": null,\n      \"reason\": \"\",\n" +
				"      \"health\": \"\",\n      \"health_checks\": 0,\n      \"health_failures\": 0,\n      \"last_check_ms_ago\": 0,\n      \"health_reason\": \"\"\n    }\n  ]\n}\n", ""},
		{[]string{"--socket", sock, "--json", "echo"}, 0, "null\n", ""},
		{[]string{"--socket", sock, "bogus"}, 1, "", "graphctl: Unknown command: bogus\nAvailable commands: status, echo\n"},
		{[]string{"--socket", sock, "--json", "bogus"}, 1, "", "graphctl: Unknown command: bogus\nAvailable commands: status, echo\n"},
		// A failing reply with a report: the report on stdout, exit 1.
		{[]string{"--socket", sock, "validate"}, 1, "✗ 1 cycle\n", "graphctl: graph validation failed\n"},
		{[]string{"--socket", sock, "--json", "validate"}, 1, "{\n  \"valid\": false\n}\n", "graphctl: graph validation failed\n"},
	} {
		code, out, errOut := run(tc.args...)
		if code != tc.code || out != tc.stdout || errOut != tc.stderr {
			t.Errorf("graphctl %q = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errOut, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	t.Setenv("GRAPHCTL_SOCKET", fakeResolver(t))
	if code, out, _ := run("echo", "hi"); code != 0 || out != "hi\n" {
		t.Errorf("graphctl echo hi via $GRAPHCTL_SOCKET = %d, %q", code, out)
	}
}

// Without a server graphctl says so in exactly one line, naming the socket
// and whether graph-resolver runs (another test binary may be running one).
func TestNoServer(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	code, out, errOut := run("--socket", missing, "status")
	want := regexp.MustCompile(`^graphctl: control socket ` + regexp.QuoteMeta(missing) +
		` does not exist; graph-resolver is (not running|running \(pid \d+(, \d+)*\) but not on this socket: check --socket and \$GRAPHCTL_SOCKET)\n$`)
	if code != 1 || out != "" || !want.MatchString(errOut) {
		t.Errorf("graphctl without a socket = %d, %q, %q; want 1 and one line matching %s", code, out, errOut, want)
	}

	// A socket file nobody listens on (left by a crash).
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, _, errOut = run("--socket", stale, "status")
	if code != 1 || !strings.HasPrefix(errOut, "graphctl: nothing listens on control socket "+stale+"; graph-resolver is ") ||
		strings.Count(errOut, "\n") != 1 {
		t.Errorf("graphctl with a stale socket = %d, %q; want 1 and one line", code, errOut)
	}
}

func TestUnreachableNamesRunningResolver(t *testing.T) {
	proc := t.TempDir()
	for pid, comm := range map[string]string{"1": "graph-resolver\n", "42": "sleep\n", "self": "graph-resolver\n", "77": "graph-resolver\n"} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm), 0o644)
	}
	err := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}
	got := unreachable("/run/x.sock", err, proc)
	want := "control socket /run/x.sock does not exist; graph-resolver is running (pid 1, 77) but not on this socket: check --socket and $GRAPHCTL_SOCKET"
	if got != want {
		t.Errorf("unreachable = %q; want %q", got, want)
	}
	if got := unreachable("/run/x.sock", err, t.TempDir()); got != "control socket /run/x.sock does not exist; graph-resolver is not running" {
		t.Errorf("unreachable without graph-resolver = %q", got)
	}
}

func TestUsage(t *testing.T) {
	code, out, errOut := run("--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: graphctl [--socket PATH] [--json] <command> [args...]") ||
		!strings.Contains(out, "Example:\n  graphctl status") {
		t.Errorf("graphctl --help = %d, %q, %q", code, out, errOut)
	}
	// Every command graph-resolver knows has a description and an example.
	for _, cmd := range []string{"status", "caps", "log", "readiness", "check-readiness", "tree", "rdeps", "pending",
		"simulate remove", "dot", "check-cycles", "analyze", "validate", "path", "scc", "order", "resolve", "reload",
		"poweroff", "reboot"} {
		entry := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(cmd) + `( \S+)* {2,}\S.*\n(.*\n)?\s+graphctl ` + regexp.QuoteMeta(cmd) + `\b`)
		if !entry.MatchString(out) {
			t.Errorf("graphctl --help lacks a description and an example for %q:\n%s", cmd, out)
		}
	}
	for _, args := range [][]string{nil, {"--bogus", "status"}} {
		code, out, errOut := run(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Usage: graphctl") {
			t.Errorf("graphctl %q = %d, %q, %q; want 2 and usage on stderr", args, code, out, errOut)
		}
	}
}
