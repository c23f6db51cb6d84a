package resolver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"yakimg/yakiros/control"
)

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// graphctl log shows the last lines of a component's log, across a
// rotation, in the reference's layout; its errors exit non-zero.
func TestLogCommand(t *testing.T) {
	in := newInstance(t)
	in.extra = []string{"--log-max", "400"}
	count := `i=$0; while [ $i -le $1 ]; do echo "line $i"; i=$((i+1)); done`
	decl(t, in.dir, "a.toml", "chatty", "oneshot", "/bin/sh", []string{"-c", count, "1", "30"}, nil, nil)
	decl(t, in.dir, "b.toml", "big", "oneshot", "/bin/sh", []string{"-c", count, "100", "199"}, nil, nil)
	decl(t, in.dir, "c.toml", "waiting", "service", "/bin/sleep", []string{"1000"}, []string{"never.up"}, nil)
	in.start()
	in.waitFor("the oneshots", states(map[string]string{"chatty": "DONE", "big": "DONE"}))
	waitText(t, "chatty.log", "line 30\n", readFile(filepath.Join(in.logDir, "chatty.log")))
	waitText(t, "big.log", "line 199\n", readFile(filepath.Join(in.logDir, "big.log")))

	header := func(name string, n int) string {
		return fmt.Sprintf("Recent logs for component '%s' (last %d lines):\n%s\n", name, n, strings.Repeat("─", 48))
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"log", "chatty"}, header("chatty", 20) + numbered(11, 30)},
		{[]string{"log", "chatty", "3"}, header("chatty", 3) + numbered(28, 30)},
		// big.log was rotated at 400 bytes: the lines continue from
		// big.log.1, which holds at least 43 of them.
		{[]string{"log", "big", "40"}, header("big", 40) + numbered(160, 199)},
	} {
		code, out, errOut := in.ctl(tc.args...)
		if code != 0 || out != tc.want {
			t.Errorf("graphctl %q = %d, stderr %q, stdout\n%s\nwant\n%s", tc.args, code, errOut, out, tc.want)
		}
	}
	// A removed component's log is still shown; right after a rotation the
	// lines come from both files.
	os.WriteFile(filepath.Join(in.logDir, "old.log.1"), []byte(numbered(1, 30)), 0o644)
	os.WriteFile(filepath.Join(in.logDir, "old.log"), []byte(numbered(31, 35)), 0o644)
	if code, out, _ := in.ctl("log", "old", "10"); code != 0 || out != header("old", 10)+numbered(26, 35) {
		t.Errorf("graphctl log old 10 = %d\n%s\nwant lines 26 to 35 from old.log.1 and old.log", code, out)
	}
	code, out, _ := in.ctl("log", "chatty", "1000")
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(header("chatty", 1000))+`\[\d+\] Starting component 'chatty' \(pid \d+\)\n`+
		numbered(1, 30)+`$`).MatchString(out) || code != 0 {
		t.Errorf("graphctl log chatty 1000 = %d\n%s\nwant the whole file", code, out)
	}
	for _, name := range []string{"big.log", "big.log.1"} {
		if fi, err := os.Stat(filepath.Join(in.logDir, name)); err != nil || fi.Size() > 400 {
			t.Errorf("%s: %v; want it to exist and hold at most 400 bytes", name, err)
		}
	}

	code, out, _ = in.ctl("--json", "log", "chatty", "2")
	var d control.LogData
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d.Component != "chatty" ||
		d.Path != filepath.Join(in.logDir, "chatty.log") || strings.Join(d.Lines, "|") != "line 29|line 30" {
		t.Errorf("graphctl --json log chatty 2 = %d, %v\n%s", code, err, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"log"}, "graphctl: log command requires component name\nUsage: log <component_name> [lines]\n"},
		{[]string{"log", "chatty", "0"}, "graphctl: log: number of lines \"0\" must be a positive integer\n"},
		{[]string{"log", "chatty", "ten"}, "graphctl: log: number of lines \"ten\" must be a positive integer\n"},
		{[]string{"log", "nope"}, "graphctl: component 'nope' not found\n"},
		{[]string{"log", "../../../etc/passwd"}, "graphctl: component '../../../etc/passwd' not found\n"},
		{[]string{"log", "waiting"}, "graphctl: Log file for component 'waiting' not found at " +
			filepath.Join(in.logDir, "waiting.log") + "\n(Per-component logging may not be enabled)\n"},
	} {
		code, out, errOut := in.ctl(tc.args...)
		if code != 1 || out != "" || errOut != tc.want {
			t.Errorf("graphctl %q = %d, %q, %q; want 1 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(in.logDir, "waiting.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := in.ctl("log", "waiting"); code != 0 || out != header("waiting", 20)+"(log file is empty)\n" {
		t.Errorf("graphctl log of an empty file = %d\n%s", code, out)
	}
}

func TestLastLines(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 20000)
	for _, tc := range []struct {
		text string
		n    int
		want []string
	}{
		{"", 5, nil},
		{"a\nb\nc\n", 2, []string{"b", "c"}},
		{"a\nb\nc", 2, []string{"b", "c"}}, // no final newline
		{"a\nb\n", 5, []string{"a", "b"}},
		{"\n\nz\n", 2, []string{"", "z"}},
		{"first\n" + long + "\nlast\n", 2, []string{long, "last"}}, // lines across read blocks
		{strings.Repeat("0123456789\n", 3000), 1, []string{"0123456789"}},
	} {
		path := filepath.Join(dir, "log")
		os.WriteFile(path, []byte(tc.text), 0o644)
		got, err := lastLines(path, tc.n)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("lastLines(%.20q, %d) = %.60q, %v; want %.60q", tc.text, tc.n, got, err, tc.want)
		}
	}
}

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "4096": 4096, "4K": 4096, "1M": 1 << 20, "2G": 2 << 30} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "K", "1.5M", "1MB", "1T", "x"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d; want an error", in, b)
		}
	}
}
