package graphctl

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
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
				"      \"pid\": 0,\n      \"uptime_ms\": 0,\n      \"restarts\": 0,\n      \"requires\": null,\n      \"provides\": null,\n      \"reason\": \"\"\n    }\n  ]\n}\n", ""},
		{[]string{"--socket", sock, "--json", "echo"}, 0, "null\n", ""},
		{[]string{"--socket", sock, "bogus"}, 1, "", "graphctl: Unknown command: bogus\nAvailable commands: status, echo\n"},
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

func TestNoServer(t *testing.T) {
	code, out, errOut := run("--socket", filepath.Join(t.TempDir(), "none.sock"), "status")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "graphctl: connect to graph-resolver: ") {
		t.Errorf("graphctl without a server = %d, %q, %q; want 1 and a connect error", code, out, errOut)
	}
}

func TestUsage(t *testing.T) {
	code, out, errOut := run("--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: graphctl [--socket PATH] [--json] <command> [args...]") ||
		!strings.Contains(out, "Example:\n  graphctl status") {
		t.Errorf("graphctl --help = %d, %q, %q", code, out, errOut)
	}
	for _, args := range [][]string{nil, {"--bogus", "status"}} {
		code, out, errOut := run(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Usage: graphctl") {
			t.Errorf("graphctl %q = %d, %q, %q; want 2 and usage on stderr", args, code, out, errOut)
		}
	}
}
