package suites

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"yakimg/suites/report"
)

func TestGraphModel(t *testing.T) {
	m := guestModel(t)
	for _, tc := range []struct {
		name  string
		deps  []string
		cycle bool
		depth int
	}{
		{"kernel", nil, false, 0},
		{"network-setup", nil, false, 0}, // the kernel's capabilities make no edges
		{"test-echo-server", []string{"network-setup"}, false, 1},
		{"test-web-server", []string{"network-setup", "files-setup"}, false, 1},
		{"test-monitor", []string{"test-echo-server", "test-web-server", "test-database"}, false, 2},
		{"test-cycle-a", []string{"test-cycle-b"}, true, -1},
		{"test-orphan", nil, false, 0},
	} {
		if got := m.deps(tc.name); !slices.Equal(got, tc.deps) {
			t.Errorf("deps(%s) = %v; want %v", tc.name, got, tc.deps)
		}
		if got := m.onCycle(tc.name); got != tc.cycle {
			t.Errorf("onCycle(%s) = %v; want %v", tc.name, got, tc.cycle)
		}
		if got := m.depth(tc.name); got != tc.depth {
			t.Errorf("depth(%s) = %d; want %d", tc.name, got, tc.depth)
		}
	}
	if got := m.requirers("network.configured"); !slices.Equal(got, []string{"test-echo-server", "test-web-server"}) {
		t.Errorf("requirers(network.configured) = %v", got)
	}
	if got := fmt.Sprint(m.lostWith("network-setup")); got != "[[test-echo-server test-web-server] [test-monitor]]" {
		t.Errorf("lostWith(network-setup) = %s", got)
	}
	if got := m.lostWith("test-monitor"); len(got) != 0 {
		t.Errorf("lostWith(test-monitor) = %v; want nothing", got)
	}
}

// TestGraphAnalysisPassesOnTheGuest runs every case against graphctl's
// answers in a correct guest.
func TestGraphAnalysisPassesOnTheGuest(t *testing.T) {
	g := replyGraphctl(t, guestReplies(t))
	for _, c := range graphAnalysis.Cases {
		if rc := runSuiteCase(t, graphAnalysis, c.Name, g); rc.Status != report.Pass {
			t.Errorf("%s = %+v; want pass", c.Name, rc)
		}
	}
}

// TestGraphAnalysisFailsWithoutCommands: a build without a command fails
// that command's case, with graphctl's error.
func TestGraphAnalysisFailsWithoutCommands(t *testing.T) {
	for _, tc := range []struct{ caseName, missing string }{
		{"check-cycles-names-the-cycle", "check-cycles"},
		{"scc-lists-the-cycle", "--json scc"},
		{"pending-names-orphan", "--json pending"},
		{"validate-fails-on-cycle", "validate"},
		{"order-respects-requires", "order"},
		{"dot-is-complete", "dot"},
		{"tree-full-depth", "tree test-monitor"},
		{"rdeps-lists-dependents", "--json rdeps test.echo"},
		{"path-follows-requires", "path test-monitor network-setup"},
		{"analyze-metrics", "analyze"},
		{"simulate-remove-is-transitive-and-read-only", "--json simulate remove network-setup"},
	} {
		replies := guestReplies(t)
		delete(replies, tc.missing)
		c := runSuiteCase(t, graphAnalysis, tc.caseName, replyGraphctl(t, replies))
		if c.Status != report.Fail || !strings.Contains(c.Message, "Unknown command: "+tc.missing) {
			t.Errorf("%s without %q = %+v; want fail with graphctl's error", tc.caseName, tc.missing, c)
		}
	}
}

// TestGraphAnalysisCatchesWrongAnswers changes one answer at a time the way
// a broken YakirOS might, and wants that case to fail saying why.
func TestGraphAnalysisCatchesWrongAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, caseName, args string
		change               func(string) string
		code                 int
		msg                  string
	}{
		{"cycle members started", "cycle-members-in-cycle-state", "--json status",
			func(s string) string { return strings.Replace(s, `"CYCLE"`, `"INACTIVE"`, 1) }, 0, "test-cycle-a is INACTIVE, not CYCLE"},
		{"orphan started", "cycle-members-in-cycle-state", "--json status",
			func(s string) string {
				return strings.Replace(s, `"name": "test-orphan",
      "type": "service",
      "state": "INACTIVE"`, `"name": "test-orphan",
      "type": "service",
      "state": "FAILED"`, 1)
			}, 0, "test-orphan is FAILED"},
		{"first cycle only", "check-cycles-names-the-cycle", "check-cycles",
			func(s string) string { return strings.Replace(s, "  2. test-cycle-b\n", "", 1) }, 0, "does not count"},
		{"bogus cycle path", "check-cycles-names-the-cycle", "check-cycles",
			func(s string) string {
				return strings.Replace(s, "test-cycle-a -> test-cycle-b -> test-cycle-a", "test-cycle-a -> test-cycle-a", 1)
			}, 0,
			"test-cycle-a does not depend on test-cycle-a"},
		{"no cycle found", "check-cycles-names-the-cycle", "check-cycles",
			func(string) string { return "✓ No dependency cycles detected\nThe component graph is valid.\n" }, 0, "reports 0 cycles"},
		{"stub scc", "scc-lists-the-cycle", "--json scc",
			func(string) string { return `{"sccs":[],"acyclic":12}` }, 0, "want one component"},
		{"scc miscounts", "scc-lists-the-cycle", "--json scc",
			func(s string) string { return strings.Replace(s, `"acyclic": 10`, `"acyclic": 12`, 1) }, 0, "12 components in no cycle; want 10"},
		{"pending misses orphan", "pending-names-orphan", "--json pending",
			func(s string) string { return strings.Replace(s, `"test-orphan"`, `"test-monitor"`, 1) }, 0, "lists [test-cycle-a test-cycle-b test-monitor]"},
		{"validate passes", "validate-fails-on-cycle", "validate",
			func(string) string { return "✓ Graph validation passed\n" }, 0, "exited 0"},
		{"order too early", "order-respects-requires", "order",
			func(s string) string {
				s = strings.Replace(s, "Layer 1: test-database, test-echo-server, test-web-server", "Layer 1: test-database, test-echo-server, test-monitor", 1)
				return strings.Replace(s, "Layer 2: test-monitor", "Layer 2: test-web-server", 1)
			}, 0, "test-monitor (layer 1) depends on test-echo-server (layer 1)"},
		{"order forgets the cycle", "order-respects-requires", "order",
			func(s string) string {
				s = strings.Replace(s, "  test-cycle-b (in a cycle)\n", "", 1)
				return strings.Replace(s, "2 blocked", "1 blocked", 1)
			}, 0, "test-cycle-b is in a cycle or depends on one"},
		{"dot without a requires edge", "dot-is-complete", "dot",
			func(s string) string {
				return strings.Replace(s, "\"test-web-server\" -> \"cap:files\" [color=red];\n", "", 1)
			}, 0,
			`no red edge "test-web-server" -> "cap:files"`},
		{"dot unbalanced", "dot-is-complete", "dot",
			func(s string) string { return strings.TrimSuffix(s, "}\n") }, 0, "not valid DOT"},
		{"tree two levels deep", "tree-full-depth", "tree test-monitor",
			func(s string) string {
				return strings.Replace(s, "│       └── requires: filesystem.sys (UP, from kernel)\n", "", 1)
			}, 0,
			"has 0 entries below it; network-setup has 1 requirements"},
		{"tree cut too early", "tree-full-depth", "tree test-monitor",
			func(s string) string {
				return strings.Replace(s, "│   └── requires: network.configured (UP, from network-setup)\n│       └── requires: filesystem.sys (UP, from kernel)\n",
					"│   └── requires: network.configured (UP, from network-setup) [see above]\n", 1)
			}, 0, "network-setup was not expanded before"},
		{"rdeps text", "rdeps-lists-dependents", "rdeps test.echo",
			func(s string) string { return strings.Replace(s, "(ACTIVE)", "(INACTIVE)", 1) }, 0, "rdeps test.echo ="},
		{"path stub", "path-follows-requires", "path test-monitor network-setup",
			func(string) string {
				return "Dependency path from 'test-monitor' to 'network-setup':\n  Path finding between capabilities is not yet implemented\n"
			}, 0, "no path heading"},
		{"path skips a step", "path-follows-requires", "path test-monitor network-setup",
			func(s string) string {
				return strings.Replace(s, "  2. test-echo-server requires network.configured\n  3. network-setup\n", "  2. network-setup\n", 1)
			}, 0, "heading says 2 step(s)"},
		{"analyze hard-coded zeros", "analyze-metrics", "analyze",
			func(s string) string {
				return strings.Replace(s, "Max Dependency Depth:     2", "Max Dependency Depth:     0", 1)
			}, 0,
			`Max Dependency Depth: "0"; want 2`},
		{"simulate not transitive", "simulate-remove-is-transitive-and-read-only", "--json simulate remove network-setup",
			func(s string) string {
				i := strings.Index(s, `,
    {
      "name": "test-monitor"`)
				return s[:i] + "\n  ]\n}"
			}, 0, "affects [[test-echo-server test-web-server]] by depth"},
	} {
		replies := guestReplies(t)
		r := replies[tc.args]
		r.stdout, r.stderr, r.code = tc.change(r.stdout+r.stderr), "", tc.code
		replies[tc.args] = r
		d := 3 * time.Second
		if tc.args == "--json status" {
			d = waitFails
		}
		c := runSuiteCaseWithin(t, graphAnalysis, tc.caseName, replyGraphctl(t, replies), d)
		if c.Status != report.Fail || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s: %s = %+v; want fail with %q", tc.name, tc.caseName, c, tc.msg)
		}
	}
}

func TestSimulateRemoveMustNotAct(t *testing.T) {
	// The fake's status changes once simulate has run: the echo server
	// was restarted.
	dir := t.TempDir()
	replies := guestReplies(t)
	restarted := strings.Replace(replies["--json status"].stdout, `"pid": 229`, `"pid": 300`, 1)
	writeFile(t, dir+"/after", restarted)
	script := `case "$*" in
"--json simulate remove network-setup") touch ` + dir + `/ran ;;
"--json status") if [ -e ` + dir + `/ran ]; then cat ` + dir + `/after; exit; fi ;;
esac
exec ` + replyGraphctl(t, replies) + ` "$@"
`
	c := runSuiteCase(t, graphAnalysis, "simulate-remove-is-transitive-and-read-only", fakeGraphctl(t, script))
	if c.Status != report.Fail || !strings.Contains(c.Message, "test-echo-server is ACTIVE pid 300; it was ACTIVE pid 229") {
		t.Errorf("simulate with a side effect = %+v; want fail", c)
	}
}

func TestParseCycleReport(t *testing.T) {
	blocks, err := parseCycleReport(readGuest(t, "check-cycles.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 1 || !slices.Equal(blocks[0].Members, []string{"test-cycle-a", "test-cycle-b"}) ||
		!slices.Equal(blocks[0].Path, []string{"test-cycle-a", "test-cycle-b", "test-cycle-a"}) {
		t.Errorf("parseCycleReport = %+v", blocks)
	}
	two := "CYCLE DETECTED: Dependency cycle detected: a -> b -> a\n\nComponents involved in the cycle:\n  1. a\n  2. b\n\n" +
		"CYCLE DETECTED: Dependency cycle detected: c -> c\n\nComponents involved in the cycle:\n  1. c\n\n" +
		"Total: 2 dependency cycle(s) involving 3 component(s)\n"
	if blocks, err := parseCycleReport(two); err != nil || len(blocks) != 2 || !slices.Equal(blocks[1].Path, []string{"c", "c"}) {
		t.Errorf("parseCycleReport(two cycles) = %+v, %v", blocks, err)
	}
	if blocks, err := parseCycleReport("✓ No dependency cycles detected\nThe component graph is valid.\n"); err != nil || blocks != nil {
		t.Errorf("parseCycleReport(no cycles) = %+v, %v", blocks, err)
	}
	for _, bad := range []string{
		"",
		strings.Replace(two, "  2. b\n", "  3. b\n", 1),
		strings.Replace(two, "involving 3", "involving 2", 1),
		strings.Replace(two, "\n\nComponents involved", "\nComponents involved", 1),
		strings.TrimSuffix(two, "Total: 2 dependency cycle(s) involving 3 component(s)\n"),
		"CYCLE DETECTED: x\n",
	} {
		if blocks, err := parseCycleReport(bad); err == nil {
			t.Errorf("parseCycleReport(%q) = %+v, nil error", bad, blocks)
		}
	}
}

func TestParseOrderAndCheck(t *testing.T) {
	m := guestModel(t)
	o, err := parseOrder(readGuest(t, "order.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Layers) != 3 || !slices.Equal(o.Layers[2], []string{"test-monitor"}) ||
		!maps.Equal(o.Blocked, map[string]string{"test-cycle-a": "in a cycle", "test-cycle-b": "in a cycle"}) {
		t.Errorf("parseOrder = %+v", o)
	}
	if err := checkOrder(o, m); err != nil {
		t.Errorf("checkOrder(guest) = %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"late", "Layer 1: test-database, test-echo-server, test-web-server\nLayer 2: test-monitor\n",
			"Layer 1: test-database, test-echo-server, test-web-server\nLayer 2: test-monitor\nLayer 3: test-orphan\n", "test-orphan is placed twice"},
		{"twice", "Layer 2: test-monitor", "Layer 2: test-monitor, kernel", "kernel is placed twice"},
		{"missing", "Layer 2: test-monitor\n", "", "test-monitor is in no layer"},
		{"blocked reason", "test-cycle-b (in a cycle)", "test-cycle-b (depends on a cycle)", "test-cycle-b is blocked as"},
		{"placed and blocked", "Layer 2: test-monitor", "Layer 2: test-monitor, test-cycle-a", "test-cycle-a is placed"},
	} {
		out := strings.Replace(readGuest(t, "order.txt"), tc.from, tc.to, 1)
		// Keep the total right so that checkOrder, not parseOrder, decides.
		if p, err := parseOrder(out); err == nil {
			err = checkOrder(p, m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: checkOrder = %v; want %q", tc.name, err, tc.want)
			}
		} else if !strings.Contains(err.Error(), "total line") {
			t.Errorf("%s: parseOrder = %v", tc.name, err)
		}
	}
	// A layer too late is caught even with a consistent total.
	late := strings.Replace(readGuest(t, "order.txt"), "Layer 0: files-setup, kernel, network-setup, storage-setup, test-orphan, yakimg-suites\nLayer 1: test-database",
		"Layer 0: files-setup, kernel, network-setup, storage-setup, test-orphan\nLayer 1: test-database, yakimg-suites", 1)
	if p, err := parseOrder(late); err != nil {
		t.Errorf("parseOrder(late) = %v", err)
	} else if err := checkOrder(p, m); err == nil || !strings.Contains(err.Error(), "yakimg-suites is in layer 1; its longest dependency chain has 0 edge(s)") {
		t.Errorf("checkOrder(late) = %v", err)
	}
	for _, bad := range []string{
		"",
		strings.Replace(readGuest(t, "order.txt"), "Layer 1:", "Layer 2:", 1),
		strings.Replace(readGuest(t, "order.txt"), "TOPOLOGICAL ORDER", "ORDER", 1),
		strings.Replace(readGuest(t, "order.txt"), "in 3 layer(s)", "in 2 layer(s)", 1),
		strings.Replace(readGuest(t, "order.txt"), "2 blocked", "0 blocked", 1),
		strings.Replace(readGuest(t, "order.txt"), "\nTotal:", "Total:", 1),
	} {
		if o, err := parseOrder(bad); err == nil {
			t.Errorf("parseOrder(%q) = %+v, nil error", bad, o)
		}
	}
	acyclic := "TOPOLOGICAL ORDER\n" + strings.Repeat("═", 17) + "\nLayer 0: a\nLayer 1: b, c\n\nTotal: 3 component(s) in 2 layer(s), 0 blocked\n"
	if o, err := parseOrder(acyclic); err != nil || len(o.Layers) != 2 || len(o.Blocked) != 0 {
		t.Errorf("parseOrder(acyclic) = %+v, %v", o, err)
	}
}

func TestParsePath(t *testing.T) {
	from, to, steps, err := parsePath(readGuest(t, "path.txt"))
	want := []pathStepText{{"test-monitor", "test.echo"}, {"test-echo-server", "network.configured"}, {"network-setup", ""}}
	if err != nil || from != "test-monitor" || to != "network-setup" || !slices.Equal(steps, want) {
		t.Errorf("parsePath = %q, %q, %v, %v", from, to, steps, err)
	}
	for _, bad := range []string{
		"Dependency path from 'a' to 'b':\n  none: 'a' does not depend on 'b'\n",
		"Dependency path from 'a' to 'b' (1 step(s)):\n  1. a requires x\n  2. b requires y\n",
		"Dependency path from 'a' to 'b' (1 step(s)):\n  1. a\n  2. b\n",
		"Dependency path from 'a' to 'b' (2 step(s)):\n  1. a requires x\n  2. b\n",
		"Dependency path from 'a' to 'b' (1 step(s)):\n  2. a requires x\n  3. b\n",
	} {
		if _, _, steps, err := parsePath(bad); err == nil {
			t.Errorf("parsePath(%q) = %v, nil error", bad, steps)
		}
	}
}

func TestParseAnalysis(t *testing.T) {
	v, err := parseAnalysis(readGuest(t, "analyze.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if v["Components"] != "12" || v["Max Dependency Depth"] != "2" || v["Strongly Connected Comp"] != "1" || v["Avg Dependencies/Comp"] != "1.17" {
		t.Errorf("parseAnalysis = %v", v)
	}
	if _, ok := v["   Dependency cycle detected"]; ok {
		t.Errorf("parseAnalysis took a warning line for a metric: %v", v)
	}
	if _, err := parseAnalysis("Components: 3\n"); err == nil {
		t.Errorf("parseAnalysis without heading = nil error")
	}
}
