package resolver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yakimg/yakiros/control"
	"yakimg/yakiros/graph"
)

// ctlJSON runs `graphctl --json args...`, wants exit status code and
// decodes the output into v.
func (in *instance) ctlJSON(v any, code int, args ...string) {
	in.t.Helper()
	got, out, errOut := in.ctl(append([]string{"--json"}, args...)...)
	if got != code {
		in.t.Errorf("graphctl --json %q = %d, stderr %q; want %d", args, got, errOut, code)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		in.t.Fatalf("graphctl --json %q: %v in %q", args, err, out)
	}
}

// The members of every dependency cycle sit in CYCLE, never started, while
// the rest of the graph comes up; a reload that breaks a cycle lets its
// members start, and one that makes a running component part of a cycle
// stops it.
func TestCycles(t *testing.T) {
	in := newInstance(t)
	sleeper := func(file, name string, requires, provides []string) {
		decl(t, in.dir, file, name, "service", "/bin/sleep", []string{"1000"}, requires, provides)
	}
	sleeper("10-a.toml", "a", []string{"cap.b"}, []string{"cap.a"})
	sleeper("20-b.toml", "b", []string{"cap.a"}, []string{"cap.b"})
	sleeper("30-c.toml", "c", nil, []string{"cap.c"})
	sleeper("40-d.toml", "d", []string{"cap.a"}, nil)
	sleeper("50-x.toml", "x", []string{"cap.z"}, []string{"cap.x"})
	sleeper("60-z.toml", "z", nil, []string{"cap.z"})
	in.start()

	const cycleAB = "Dependency cycle detected: a -> b -> a"
	st := in.waitFor("the acyclic part", states(map[string]string{
		"a": "CYCLE", "b": "CYCLE", "c": "ACTIVE", "d": "INACTIVE", "x": "ACTIVE", "z": "ACTIVE",
	}))
	for _, name := range []string{"a", "b"} {
		if c := find(st, name); c.Reason != cycleAB || c.Pid != 0 || c.Restarts != 0 {
			t.Errorf("%s = %+v; want CYCLE, never started, reason %q", name, c, cycleAB)
		}
	}
	if want := cycleAB + ": a, b stay in CYCLE and are never started"; !strings.Contains(in.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, in.log)
	}

	code, out, errOut := in.ctl("check-cycles")
	if want := "CYCLE DETECTED: " + cycleAB + "\n\nComponents involved in the cycle:\n  1. a\n  2. b\n\nTotal: 1 dependency cycle(s) involving 2 component(s)\n"; code != 0 || out != want {
		t.Errorf("graphctl check-cycles = %d, %q, %q; want 0 and\n%s", code, out, errOut, want)
	}
	var cc graph.CycleCheck
	in.ctlJSON(&cc, 0, "check-cycles")
	if len(cc.Cycles) != 1 || !slices.Equal(cc.Cycles[0].Members, []string{"a", "b"}) || !slices.Equal(cc.Cycles[0].Path, []string{"a", "b", "a"}) {
		t.Errorf("graphctl --json check-cycles = %+v", cc)
	}
	code, out, _ = in.ctl("scc")
	if code != 0 || !strings.HasPrefix(out, "Strongly connected components: 1 (largest: 2 components)\n  1. a, b (2 components)\n     cycle: a -> b -> a\n") {
		t.Errorf("graphctl scc = %d\n%s", code, out)
	}
	var scc graph.SCCList
	in.ctlJSON(&scc, 0, "scc")
	if len(scc.SCCs) != 1 || scc.Acyclic != 5 { // kernel, c, d, x, z
		t.Errorf("graphctl --json scc = %+v", scc)
	}

	// validate fails: the report on stdout, the reason on stderr, exit 1.
	code, out, errOut = in.ctl("validate")
	if code != 1 || !strings.HasPrefix(out, "✗ Graph validation failed: 0 rejected declaration(s), 1 dependency cycle(s)\n  "+cycleAB+"\n") ||
		errOut != "graphctl: graph validation failed: 0 rejected declaration(s), 1 dependency cycle(s)\n" {
		t.Errorf("graphctl validate = %d, %q, %q; want 1 with the report", code, out, errOut)
	}
	var v graph.Validation
	in.ctlJSON(&v, 1, "validate")
	if v.Valid || len(v.Cycles) != 1 || len(v.Rejected) != 0 {
		t.Errorf("graphctl --json validate = %+v; want invalid with one cycle", v)
	}

	_, out, _ = in.ctl("pending")
	for _, want := range []string{
		"a (CYCLE, in a dependency cycle) waiting for:\n  → cap.b: provided by b (CYCLE)\n",
		"d (INACTIVE) waiting for:\n  → cap.a: provided by a (CYCLE)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("graphctl pending =\n%s\nwant it to contain\n%s", out, want)
		}
	}
	var o graph.Order
	in.ctlJSON(&o, 0, "order")
	if want := []graph.Blocked{{Name: "a", InCycle: true}, {Name: "b", InCycle: true}, {Name: "d"}}; !slices.Equal(o.Blocked, want) {
		t.Errorf("graphctl --json order blocked %+v; want %+v", o.Blocked, want)
	}

	// Break a↔b; make running x part of a new cycle x↔w (w provides
	// cap.z, which x requires, besides z).
	xPid := find(st, "x").Pid
	sleeper("20-b.toml", "b", nil, []string{"cap.b"})
	sleeper("70-w.toml", "w", []string{"cap.x"}, []string{"cap.z"})
	code, out, _ = in.ctl("reload")
	if code != 0 || !strings.Contains(out, "  changed: b\n  added: w\n") {
		t.Errorf("graphctl reload = %d\n%s", code, out)
	}
	st = in.waitFor("a↔b broken, x↔w formed", states(map[string]string{
		"a": "ACTIVE", "b": "ACTIVE", "d": "ACTIVE", "x": "CYCLE", "w": "CYCLE", "z": "ACTIVE", "c": "ACTIVE",
	}))
	if c := find(st, "x"); c.Reason != "Dependency cycle detected: w -> x -> w" || c.Pid != 0 || !gone(xPid) {
		t.Errorf("x = %+v (old process gone: %v); want stopped and in CYCLE", c, gone(xPid))
	}

	// Remove w: x leaves CYCLE and starts again.
	if err := os.Remove(filepath.Join(in.dir, "70-w.toml")); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := in.ctl("reload"); code != 0 {
		t.Fatalf("graphctl reload = %d, %q", code, errOut)
	}
	in.waitFor("x back", states(map[string]string{"x": "ACTIVE"}))
	code, out, _ = in.ctl("validate")
	if code != 0 || !strings.HasPrefix(out, "✓ Graph validation passed\n") {
		t.Errorf("graphctl validate without cycles = %d\n%s", code, out)
	}
}

// Every analysis command answers in text and JSON through graphctl, and
// refuses unknown names and wrong arguments with exit status 1 and one line.
func TestGraphCommands(t *testing.T) {
	in := newInstance(t)
	sleeper := func(file, name string, requires, provides []string, lifecycle ...string) {
		decl(t, in.dir, file, name, "service", "/bin/sleep", []string{"1000"}, requires, provides, lifecycle...)
	}
	sleeper("10-net.toml", "net", []string{"filesystem.run"}, []string{"network"})
	sleeper("20-db.toml", "db", []string{"network"}, []string{"database"})
	sleeper("30-web.toml", "web", []string{"database", "network"}, []string{"http"})
	sleeper("40-orphan.toml", "orphan", []string{"never.provided"}, nil)
	in.start()
	before := in.waitFor("the graph", states(map[string]string{"net": "ACTIVE", "db": "ACTIVE", "web": "ACTIVE", "orphan": "INACTIVE"}))

	texts := []struct {
		args []string
		want string // a part of the text
	}{
		{[]string{"tree", "web"}, "web\n├── requires: database (UP, from db)\n│   └── requires: network (UP, from net)\n│       └── requires: filesystem.run (UP, from kernel)\n└── requires: network (UP, from net) [see above]\nprovides:\n└── http\n"},
		{[]string{"rdeps", "network"}, "network:\n  → db (ACTIVE)\n  → web (ACTIVE)\nTotal: 2 component(s) depend on this capability\n"},
		{[]string{"pending"}, "orphan (INACTIVE) waiting for:\n  → never.provided: no provider declared\nTotal: 1 component(s) waiting for capabilities\n"},
		{[]string{"simulate", "remove", "net"}, "Removing net would:\n  - Withdraw capabilities:\n    → network\n  - Directly affect components:\n    → db (requires network, currently ACTIVE)\n    → web (requires network, currently ACTIVE)\n"},
		{[]string{"dot"}, "digraph yakiros {\n"},
		{[]string{"check-cycles"}, "✓ No dependency cycles detected\nThe component graph is valid.\n"},
		{[]string{"analyze"}, "Max Dependency Depth:     2\n"},
		{[]string{"validate"}, "✓ Graph validation passed\n  No dependency cycles detected\n  All components have valid configurations\n  Warning: component 'orphan' requires 'never.provided', which no component provides\n"},
		{[]string{"path", "web", "net"}, "Dependency path from 'web' to 'net' (1 step(s)):\n  1. web requires network\n  2. net\n"},
		{[]string{"scc"}, "No strongly connected components found\n"},
		{[]string{"order"}, "TOPOLOGICAL ORDER\n═════════════════\nLayer 0: kernel, net, orphan\nLayer 1: db\nLayer 2: web\n"},
	}
	for _, tc := range texts {
		code, out, errOut := in.ctl(tc.args...)
		if code != 0 || errOut != "" || !strings.Contains(out, tc.want) {
			t.Errorf("graphctl %q = %d, stderr %q\n%s\nwant it to contain\n%s", tc.args, code, errOut, out, tc.want)
		}
	}

	var tree graph.RequirementTree
	in.ctlJSON(&tree, 0, "tree", "web")
	if tree.Component != "web" || tree.State != "ACTIVE" || len(tree.Requires) != 2 || tree.Requires[0].Providers[0].Component != "db" {
		t.Errorf("graphctl --json tree web = %+v", tree)
	}
	var rdeps graph.Dependents
	in.ctlJSON(&rdeps, 0, "rdeps", "database")
	if want := []graph.Dependent{{Name: "web", State: "ACTIVE"}}; rdeps.Capability != "database" || !slices.Equal(rdeps.Components, want) {
		t.Errorf("graphctl --json rdeps database = %+v", rdeps)
	}
	var pending graph.PendingList
	in.ctlJSON(&pending, 0, "pending")
	if len(pending.Components) != 1 || pending.Components[0].Name != "orphan" || pending.Components[0].Missing[0].Capability != "never.provided" {
		t.Errorf("graphctl --json pending = %+v; want orphan missing never.provided", pending)
	}
	var im graph.Impact
	in.ctlJSON(&im, 0, "simulate", "remove", "net")
	var affected []string
	for _, a := range im.Affected {
		affected = append(affected, fmt.Sprintf("%s@%d", a.Name, a.Depth))
	}
	if !slices.Equal(affected, []string{"db@1", "web@1"}) {
		t.Errorf("graphctl --json simulate remove net affects %v", affected)
	}
	var dot string
	in.ctlJSON(&dot, 0, "dot")
	if !strings.Contains(dot, `"web" -> "cap:database" [color=red];`) {
		t.Errorf("graphctl --json dot =\n%s", dot)
	}
	var a graph.Analysis
	in.ctlJSON(&a, 0, "analyze")
	if a.Components != 5 || a.MaxDepth != 2 || a.SCCs != 0 || !slices.Equal(a.Unprovided, []string{"never.provided"}) {
		t.Errorf("graphctl --json analyze = %+v", a)
	}
	var route graph.Route
	in.ctlJSON(&route, 0, "path", "web", "network")
	if !route.Found || len(route.Steps) != 2 || route.Steps[1].Component != "net" {
		t.Errorf("graphctl --json path web network = %+v", route)
	}

	// order respects every requirement: providers come in earlier layers.
	var o graph.Order
	in.ctlJSON(&o, 0, "order")
	layer := map[string]int{}
	for i, l := range o.Layers {
		for _, name := range l {
			layer[name] = i
		}
	}
	for _, c := range before.Components {
		for _, req := range c.Requires {
			for _, p := range before.Components {
				if p.Name != "kernel" && slices.Contains(p.Provides, req) && layer[p.Name] >= layer[c.Name] {
					t.Errorf("order puts %s (layer %d) no earlier than %s (layer %d), which requires its %s", p.Name, layer[p.Name], c.Name, layer[c.Name], req)
				}
			}
		}
	}
	if len(layer) != 5 || len(o.Blocked) != 0 {
		t.Errorf("graphctl --json order = %+v; want all 5 components placed", o)
	}

	// simulate changed nothing.
	after := in.waitFor("status", states(nil))
	for _, c := range before.Components {
		if a := find(after, c.Name); a.State != c.State || a.Pid != c.Pid {
			t.Errorf("after simulate remove, %s is %s pid %d; it was %s pid %d", c.Name, a.State, a.Pid, c.State, c.Pid)
		}
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"tree", "nosuch"}, "component 'nosuch' not found"},
		{[]string{"tree"}, `usage: tree <component> (got "tree")`},
		{[]string{"rdeps", "no.such.cap"}, "capability 'no.such.cap' not found: no component provides or requires it"},
		{[]string{"simulate", "remove", "nosuch"}, "component 'nosuch' not found"},
		{[]string{"simulate", "nosuch"}, `usage: simulate remove <component> (got "simulate nosuch")`},
		{[]string{"path", "web", "nosuch"}, "'nosuch' is neither a component nor a capability"},
		{[]string{"path", "web"}, `usage: path <from> <to> (got "path web")`},
		{[]string{"order", "now"}, `usage: order (got "order now")`},
	} {
		code, out, errOut := in.ctl(tc.args...)
		if code != 1 || out != "" || errOut != "graphctl: "+tc.err+"\n" {
			t.Errorf("graphctl %q = %d, %q, %q; want 1 and the one line %q", tc.args, code, out, errOut, tc.err)
		}
	}

	// The reply to an unknown command names every command.
	_, _, errOut := in.ctl("bogus")
	for _, cmd := range []string{"status", "caps", "log", "readiness", "check-readiness", "tree", "rdeps", "pending",
		"simulate remove", "dot", "check-cycles", "analyze", "validate", "path", "scc", "order", "resolve", "reload",
		"poweroff", "reboot"} {
		if !strings.Contains(errOut, " "+cmd) {
			t.Errorf("graphctl bogus = %q; does not name %q", errOut, cmd)
		}
	}

	// A rejected file makes validate fail, naming the file and line.
	bad := filepath.Join(in.dir, "50-bad.toml")
	if err := os.WriteFile(bad, []byte("[component]\nname = \"bad\"\nbinary = \"/bin/true\"\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := in.ctl("reload"); code != 0 {
		t.Fatalf("graphctl reload = %d, %q", code, errOut)
	}
	code, out, errOut := in.ctl("validate")
	if code != 1 || !strings.Contains(out, "✗ Graph validation failed: 1 rejected declaration(s), 0 dependency cycle(s)\n  Rejected: "+bad+":4: ") ||
		errOut != "graphctl: graph validation failed: 1 rejected declaration(s), 0 dependency cycle(s)\n" {
		t.Errorf("graphctl validate with a rejected file = %d, %q, %q", code, out, errOut)
	}
	var v graph.Validation
	in.ctlJSON(&v, 1, "validate")
	if v.Valid || len(v.Rejected) != 1 || !strings.HasPrefix(v.Rejected[0], bad+":4: ") {
		t.Errorf("graphctl --json validate = %+v", v)
	}
	var st control.StatusData
	in.ctlJSON(&st, 0, "status")
	if find(st, "web").State != "ACTIVE" {
		t.Errorf("web after the reload = %+v", find(st, "web"))
	}
}
