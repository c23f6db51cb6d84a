package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"yakimg/suites/report"
)

// binDir holds the programs buildBin builds.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "yakimg-suites-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testdata/guest holds what graphctl answers in the guest once the image's
// components (components/*.toml) have settled: status and caps as
// graph-resolver prints them, and the graph commands as yakiros/graph
// renders them for that graph.

func readGuest(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "guest", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func guestModel(t *testing.T) *graphModel {
	t.Helper()
	cs, err := parseStatus([]byte(readGuest(t, "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	return newGraphModel(cs)
}

// reply is one canned graphctl answer.
type reply struct {
	stdout, stderr string
	code           int
}

// guestReplies are graphctl's answers in the settled guest, by arguments.
func guestReplies(t *testing.T) map[string]reply {
	t.Helper()
	r := map[string]reply{}
	for args, file := range map[string]string{
		"--json status": "status.json", "status": "status.txt",
		"--json caps": "caps.json", "caps": "caps.txt",
		"check-cycles": "check-cycles.txt",
		"--json scc":   "scc.json", "scc": "scc.txt",
		"--json pending": "pending.json", "pending": "pending.txt",
		"order": "order.txt", "dot": "dot.txt", "analyze": "analyze.txt",
		"tree test-monitor":                    "tree.txt",
		"rdeps test.echo":                      "rdeps.txt",
		"path test-monitor network-setup":      "path.txt",
		"--json simulate remove network-setup": "simulate.json",
		"simulate remove network-setup":        "simulate.txt",
		"--json readiness":                     "readiness.json",
		"readiness":                            "readiness.txt",
	} {
		r[args] = reply{stdout: readGuest(t, file)}
	}
	r["validate"] = reply{stderr: "graphctl: " + readGuest(t, "validate.txt"), code: 1}
	m := guestModel(t)
	for _, p := range provided {
		type dependent struct{ Name, State string }
		d := struct {
			Capability string      `json:"capability"`
			Components []dependent `json:"components"`
		}{p.cap, []dependent{}}
		for _, name := range m.requirers(p.cap) {
			d.Components = append(d.Components, dependent{name, m.byName[name].State})
		}
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		r["--json rdeps "+p.cap] = reply{stdout: string(data)}
	}
	return r
}

// replyGraphctl fakes graphctl with the replies; anything else is an
// unknown command, as graph-resolver says it.
func replyGraphctl(t *testing.T, replies map[string]reply) string {
	t.Helper()
	dir := t.TempDir()
	keys := make([]string, 0, len(replies))
	for k := range replies {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var script strings.Builder
	script.WriteString("case \"$*\" in\n")
	for i, k := range keys {
		r := replies[k]
		out, errOut := filepath.Join(dir, fmt.Sprint(i, ".out")), filepath.Join(dir, fmt.Sprint(i, ".err"))
		writeFile(t, out, r.stdout)
		writeFile(t, errOut, r.stderr)
		fmt.Fprintf(&script, "%q) cat %s; cat %s >&2; exit %d ;;\n", k, out, errOut, r.code)
	}
	script.WriteString("*) echo \"graphctl: Unknown command: $*\" >&2; exit 1 ;;\nesac\n")
	return fakeGraphctl(t, script.String())
}

// runSuiteCase runs the named case of s against graphctl g. Waits poll
// a canned status that never changes, so the case's deadline is cut to 3 s.
func runSuiteCase(t *testing.T, s Suite, name, g string) report.Case {
	t.Helper()
	return runSuiteCaseWithin(t, s, name, g, 3*time.Second)
}

// runSuiteCaseWithin runs the case with deadline d, for cases expected to
// fail by waiting in vain.
func runSuiteCaseWithin(t *testing.T, s Suite, name, g string, d time.Duration) report.Case {
	t.Helper()
	i := slices.IndexFunc(s.Cases, func(c Case) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("suite %s has no case %s", s.Name, name)
	}
	c := s.Cases[i]
	c.Timeout = d
	return runCase(context.Background(), env{graphctl: g}, c)
}

// waitFails is the deadline of cases that fail by waiting in vain.
const waitFails = 700 * time.Millisecond
