package suites

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// graphAnalysis checks YakirOS's view of its own graph against the graph
// the suite computes from `graphctl --json status` (graphModel): the
// intentional cycle test-cycle-a ⇄ test-cycle-b is found, reported and
// kept from starting while the rest comes up; test-orphan waits for a
// capability nobody provides; and every analysis command (check-cycles,
// scc, pending, validate, order, dot, tree, rdeps, path, analyze, simulate
// remove) says what the graph really is. Each case runs one command, so a
// command this build lacks fails its case with graphctl's error.
var graphAnalysis = Suite{
	Name: "graph-analysis",
	Cases: []Case{
		{Name: "cycle-members-in-cycle-state", Timeout: 60 * time.Second, Run: cycleMembersInCycleState},
		{Name: "check-cycles-names-the-cycle", Run: checkCyclesNamesTheCycle},
		{Name: "scc-lists-the-cycle", Run: sccListsTheCycle},
		{Name: "pending-names-orphan", Run: pendingNamesOrphan},
		{Name: "validate-fails-on-cycle", Run: validateFailsOnCycle},
		{Name: "order-respects-requires", Run: orderRespectsRequires},
		{Name: "dot-is-complete", Run: dotIsComplete},
		{Name: "tree-full-depth", Run: treeFullDepth},
		{Name: "rdeps-lists-dependents", Run: rdepsListsDependents},
		{Name: "path-follows-requires", Run: pathFollowsRequires},
		{Name: "analyze-metrics", Run: analyzeMetrics},
		{Name: "simulate-remove-is-transitive-and-read-only", Run: simulateRemove},
	},
}

// graphModel is the dependency graph as this suite computes it from the
// components' declarations, independently of YakirOS's analysis: A depends
// on B when A requires a capability B declares. The kernel's capabilities
// make no edges (they are up before anything runs; yakiros-reference §10.1).
type graphModel struct {
	comps    []component
	byName   map[string]component
	declared map[string][]string // capability → components declaring it, in status order
}

func newGraphModel(cs []component) *graphModel {
	m := &graphModel{comps: cs, byName: map[string]component{}, declared: map[string][]string{}}
	for _, c := range cs {
		m.byName[c.Name] = c
		if c.Name == "kernel" {
			continue
		}
		for _, p := range c.Provides {
			m.declared[p] = append(m.declared[p], c.Name)
		}
	}
	return m
}

// deps returns the components name depends on, without duplicates.
func (m *graphModel) deps(name string) []string {
	var out []string
	for _, r := range m.byName[name].Requires {
		for _, p := range m.declared[r] {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// reaches reports whether from depends on to, directly or indirectly.
func (m *graphModel) reaches(from, to string) bool {
	seen := map[string]bool{}
	stack := m.deps(from)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == to {
			return true
		}
		if !seen[n] {
			seen[n] = true
			stack = append(stack, m.deps(n)...)
		}
	}
	return false
}

func (m *graphModel) onCycle(name string) bool { return m.reaches(name, name) }

// depth is the length in edges of the longest dependency chain below name,
// or -1 when name is on or depends on a cycle.
func (m *graphModel) depth(name string) int {
	if m.onCycle(name) {
		return -1
	}
	d := 0
	for _, p := range m.deps(name) {
		pd := m.depth(p)
		if pd < 0 {
			return -1
		}
		d = max(d, pd+1)
	}
	return d
}

// requirers returns the components requiring capability c, in status order.
func (m *graphModel) requirers(c string) []string {
	var out []string
	for _, comp := range m.comps {
		if slices.Contains(comp.Requires, c) {
			out = append(out, comp.Name)
		}
	}
	return out
}

// currentModel reads the status once the components that can come up
// have. It does not wait for the cycle members' state, which only
// cycle-members-in-cycle-state checks: the model is made of declarations.
func currentModel(t *T) *graphModel {
	return newGraphModel(waitSettled(t, settledRecheck))
}

// waitGraphSettled waits until the components that can come up have, the
// cycle members are CYCLE, test-orphan waits INACTIVE and the suite
// runner runs; any other component must be ACTIVE or DONE.
func waitGraphSettled(t *T, limit time.Duration) []component {
	want := append(slices.Clone(settled),
		expectation{cycleA, "CYCLE"}, expectation{cycleB, "CYCLE"},
		expectation{orphan, "INACTIVE"}, expectation{runnerName, "STARTING"})
	return waitStatus(t, limit, "the graph settled", func(cs []component) string {
		var missing []string
		for _, e := range want {
			switch c, ok := findComponent(cs, e.name); {
			case !ok:
				missing = append(missing, e.name+" is not in the status")
			case c.State != e.state:
				missing = append(missing, fmt.Sprintf("%s is %s, not %s%s", e.name, c.State, e.state, reason(c)))
			}
		}
		for _, c := range cs {
			known := slices.ContainsFunc(want, func(e expectation) bool { return e.name == c.Name })
			if !known && c.State != "ACTIVE" && c.State != "DONE" {
				missing = append(missing, fmt.Sprintf("%s is %s%s", c.Name, c.State, reason(c)))
			}
		}
		return strings.Join(missing, "; ")
	})
}

func cycleMembersInCycleState(t *T) {
	waitSettled(t, settleLimit)
	m := newGraphModel(waitGraphSettled(t, settledRecheck))
	// The suite's own model must agree that the cycle is the only one.
	var cyclic []string
	for _, c := range m.comps {
		if m.onCycle(c.Name) {
			cyclic = append(cyclic, c.Name)
		}
	}
	if !slices.Equal(cyclic, []string{cycleA, cycleB}) && !slices.Equal(cyclic, []string{cycleB, cycleA}) {
		t.Fatalf("the declarations' cycles are %v; the image should have exactly %s ⇄ %s", cyclic, cycleA, cycleB)
	}
	for _, name := range []string{cycleA, cycleB} {
		if c := m.byName[name]; c.PID != 0 {
			t.Fatalf("%s is CYCLE but has pid %d", name, c.PID)
		}
	}
}

// grapher runs one graphctl command and fails the case if it cannot.
func grapher(t *T, args ...string) string {
	out, _, err := t.graphctl(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// graphJSON runs `graphctl --json <args>` and decodes its data into v.
func graphJSON(t *T, v any, args ...string) {
	out := grapher(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("graphctl --json %s: %v in %q", strings.Join(args, " "), err, out)
	}
}

// cycleBlock is one "CYCLE DETECTED" block of check-cycles.
type cycleBlock struct {
	Path    []string // the cycle, ending where it starts
	Members []string
}

var (
	cycleHeader = regexp.MustCompile(`^CYCLE DETECTED: Dependency cycle detected: (.+)$`)
	cycleMember = regexp.MustCompile(`^  (\d+)\. (\S+)$`)
	cyclesTotal = regexp.MustCompile(`^Total: (\d+) dependency cycle\(s\) involving (\d+) component\(s\)$`)
)

// parseCycleReport parses check-cycles (yakiros-reference §10.2, one block
// per cycle and a total): the cycles it reports, or none for its "No
// dependency cycles detected" answer.
func parseCycleReport(out string) ([]cycleBlock, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 2 && lines[0] == "✓ No dependency cycles detected" && lines[1] == "The component graph is valid." {
		return nil, nil
	}
	var blocks []cycleBlock
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], "CYCLE DETECTED:") {
		m := cycleHeader.FindStringSubmatch(lines[i])
		if m == nil || i+2 >= len(lines) || lines[i+1] != "" || lines[i+2] != "Components involved in the cycle:" {
			return nil, fmt.Errorf("line %d: malformed cycle block starting %q", i+1, lines[i])
		}
		b := cycleBlock{Path: strings.Split(m[1], " -> ")}
		for i += 3; i < len(lines); i++ {
			mm := cycleMember.FindStringSubmatch(lines[i])
			if mm == nil {
				break
			}
			if n, _ := strconv.Atoi(mm[1]); n != len(b.Members)+1 {
				return nil, fmt.Errorf("line %d: member numbered %d; want %d", i+1, n, len(b.Members)+1)
			}
			b.Members = append(b.Members, mm[2])
		}
		if len(b.Members) == 0 || i >= len(lines) || lines[i] != "" {
			return nil, fmt.Errorf("line %d: cycle block without members or closing blank line", i+1)
		}
		i++
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 || i != len(lines)-1 {
		return nil, fmt.Errorf("want cycle blocks then one total line in %q", out)
	}
	m := cyclesTotal.FindStringSubmatch(lines[i])
	involved := 0
	for _, b := range blocks {
		involved += len(b.Members)
	}
	if m == nil || m[1] != strconv.Itoa(len(blocks)) || m[2] != strconv.Itoa(involved) {
		return nil, fmt.Errorf("total line %q does not count %d cycle(s) of %d component(s)", lines[i], len(blocks), involved)
	}
	return blocks, nil
}

// checkCyclePath checks that path is a cycle of the model through members
// only: it ends where it starts and each step depends on the next.
func checkCyclePath(m *graphModel, path, members []string) error {
	if len(path) < 2 || path[0] != path[len(path)-1] {
		return fmt.Errorf("path %v does not end where it starts", path)
	}
	for i := 0; i+1 < len(path); i++ {
		if !slices.Contains(members, path[i]) {
			return fmt.Errorf("path %v passes %s, which is not a member", path, path[i])
		}
		if !slices.Contains(m.deps(path[i]), path[i+1]) {
			return fmt.Errorf("path %v: %s does not depend on %s", path, path[i], path[i+1])
		}
	}
	return nil
}

// theCycle is the image's only cycle, sorted.
var theCycle = []string{cycleA, cycleB}

func checkCyclesNamesTheCycle(t *T) {
	m := currentModel(t)
	// A report, not a failure: check-cycles succeeds and says what it found.
	blocks, err := parseCycleReport(grapher(t, "check-cycles"))
	if err != nil {
		t.Fatalf("graphctl check-cycles: %v", err)
	}
	if len(blocks) != 1 {
		t.Fatalf("graphctl check-cycles reports %d cycles %+v; want only %v", len(blocks), blocks, theCycle)
	}
	b := blocks[0]
	if !slices.Equal(b.Members, theCycle) {
		t.Fatalf("graphctl check-cycles names %v; want %v", b.Members, theCycle)
	}
	if err := checkCyclePath(m, b.Path, b.Members); err != nil {
		t.Fatalf("graphctl check-cycles: %v", err)
	}
}

// cycleJSON is a cycle in the --json answers of scc, analyze and validate.
type cycleJSON struct {
	Members []string `json:"members"`
	Path    []string `json:"path"`
}

func sccListsTheCycle(t *T) {
	m := currentModel(t)
	var scc struct {
		SCCs    *[]cycleJSON `json:"sccs"`
		Acyclic int          `json:"acyclic"`
	}
	graphJSON(t, &scc, "scc")
	if scc.SCCs == nil || len(*scc.SCCs) != 1 || !slices.Equal((*scc.SCCs)[0].Members, theCycle) {
		t.Fatalf("graphctl scc lists %+v; want one component %v", scc.SCCs, theCycle)
	}
	if err := checkCyclePath(m, (*scc.SCCs)[0].Path, theCycle); err != nil {
		t.Fatalf("graphctl scc: %v", err)
	}
	if want := len(m.comps) - len(theCycle); scc.Acyclic != want {
		t.Fatalf("graphctl scc counts %d components in no cycle; want %d", scc.Acyclic, want)
	}
	text := grapher(t, "scc")
	for _, want := range []string{
		"Strongly connected components: 1 (largest: 2 components)",
		"  1. test-cycle-a, test-cycle-b (2 components)",
		fmt.Sprintf("Components in no cycle: %d", scc.Acyclic),
	} {
		if !slices.Contains(strings.Split(text, "\n"), want) {
			t.Fatalf("graphctl scc lacks the line %q:\n%s", want, text)
		}
	}
}

func pendingNamesOrphan(t *T) {
	m := currentModel(t)
	var p struct {
		Components []struct {
			Name    string `json:"name"`
			InCycle bool   `json:"in_cycle"`
			Missing []struct {
				Capability string `json:"capability"`
				Providers  []struct {
					Name string `json:"name"`
				} `json:"providers"`
			} `json:"missing"`
		} `json:"components"`
	}
	graphJSON(t, &p, "pending")
	var names []string
	for _, c := range p.Components {
		names = append(names, c.Name)
		if want := m.onCycle(c.Name); c.InCycle != want {
			t.Fatalf("graphctl pending says %s in_cycle=%v; it is %v", c.Name, c.InCycle, want)
		}
		if c.Name == orphan && (len(c.Missing) != 1 || c.Missing[0].Capability != neverCap || len(c.Missing[0].Providers) != 0) {
			t.Fatalf("graphctl pending says %s misses %+v; want only %s, with no provider", orphan, c.Missing, neverCap)
		}
	}
	slices.Sort(names)
	if want := []string{cycleA, cycleB, orphan}; !slices.Equal(names, want) {
		t.Fatalf("graphctl pending lists %v; want %v", names, want)
	}
	text := grapher(t, "pending")
	for _, want := range []string{orphan + " (INACTIVE) waiting for:", "  → " + neverCap + ": no provider declared"} {
		if !slices.Contains(strings.Split(text, "\n"), want) {
			t.Fatalf("graphctl pending lacks the line %q:\n%s", want, text)
		}
	}
}

func validateFailsOnCycle(t *T) {
	currentModel(t)
	stdout, stderr, err := t.graphctl("validate")
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("graphctl validate exited 0 with the cycle %v declared:\n%s", theCycle, stdout)
	case !errors.As(err, &exit):
		t.Fatalf("%v", err)
	}
	out := stdout + stderr
	if !strings.Contains(out, "Graph validation failed") {
		t.Fatalf("%v", err) // with graphctl's first line: why it failed instead
	}
	for _, want := range []string{
		"Dependency cycle detected: test-cycle-a -> test-cycle-b -> test-cycle-a",
		"component 'test-orphan' requires 'test.never-provided', which no component provides",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("graphctl validate exited %d without saying %q:\n%s", exit.ExitCode(), want, out)
		}
	}
}

// order is `graphctl order` parsed.
type order struct {
	Layers  [][]string
	Blocked map[string]string // name → "in a cycle" or "depends on a cycle"
}

var (
	orderLayer = regexp.MustCompile(`^Layer (\d+): (.+)$`)
	orderBlock = regexp.MustCompile(`^  (\S+) \((in a cycle|depends on a cycle)\)$`)
	orderTotal = regexp.MustCompile(`^Total: (\d+) component\(s\) in (\d+) layer\(s\), (\d+) blocked$`)
)

// parseOrder parses the layers of `graphctl order`: a TOPOLOGICAL ORDER
// heading, "Layer N: a, b" lines numbered from 0, optionally a blank line
// and the components blocked by cycles, then a blank line and a total that
// must count what was listed.
func parseOrder(out string) (order, error) {
	o := order{Blocked: map[string]string{}}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 4 || lines[0] != "TOPOLOGICAL ORDER" || lines[1] != strings.Repeat("═", 17) {
		return o, fmt.Errorf("no TOPOLOGICAL ORDER heading in %q", out)
	}
	i := 2
	ordered := 0
	for ; i < len(lines); i++ {
		m := orderLayer.FindStringSubmatch(lines[i])
		if m == nil {
			break
		}
		if n, _ := strconv.Atoi(m[1]); n != len(o.Layers) {
			return o, fmt.Errorf("line %d: layer %s follows layer %d", i+1, m[1], len(o.Layers)-1)
		}
		layer := strings.Split(m[2], ", ")
		o.Layers = append(o.Layers, layer)
		ordered += len(layer)
	}
	if i+1 < len(lines) && lines[i] == "" && lines[i+1] == "Blocked by dependency cycles:" {
		for i += 2; i < len(lines); i++ {
			m := orderBlock.FindStringSubmatch(lines[i])
			if m == nil {
				break
			}
			o.Blocked[m[1]] = m[2]
		}
	}
	if i != len(lines)-2 || lines[i] != "" {
		return o, fmt.Errorf("line %d: want a blank line and the total, got %q", i+1, lines[i:])
	}
	m := orderTotal.FindStringSubmatch(lines[i+1])
	if m == nil || m[1] != strconv.Itoa(ordered) || m[2] != strconv.Itoa(len(o.Layers)) || m[3] != strconv.Itoa(len(o.Blocked)) {
		return o, fmt.Errorf("total line %q does not count %d component(s) in %d layer(s), %d blocked", lines[i+1], ordered, len(o.Layers), len(o.Blocked))
	}
	return o, nil
}

// checkOrder checks the layers against the model: every component is
// placed once, the cycle members and their dependents are blocked, every
// component comes after all it depends on, and as early as it can (its
// layer is its longest dependency chain).
func checkOrder(o order, m *graphModel) error {
	layerOf := map[string]int{}
	for i, l := range o.Layers {
		for _, name := range l {
			if _, dup := layerOf[name]; dup {
				return fmt.Errorf("%s is placed twice", name)
			}
			layerOf[name] = i
		}
	}
	for _, c := range m.comps {
		l, placed := layerOf[c.Name]
		why, blocked := o.Blocked[c.Name]
		d := m.depth(c.Name)
		switch {
		case placed && blocked:
			return fmt.Errorf("%s is both in layer %d and blocked", c.Name, l)
		case d < 0 && !blocked:
			return fmt.Errorf("%s is in a cycle or depends on one, but is not listed as blocked", c.Name)
		case d < 0 && (why == "in a cycle") != m.onCycle(c.Name):
			return fmt.Errorf("%s is blocked as %q", c.Name, why)
		case d >= 0 && !placed:
			return fmt.Errorf("%s is in no layer", c.Name)
		}
		if d < 0 {
			continue
		}
		for _, p := range m.deps(c.Name) {
			if layerOf[p] >= l {
				return fmt.Errorf("%s (layer %d) depends on %s (layer %d)", c.Name, l, p, layerOf[p])
			}
		}
		if l != d {
			return fmt.Errorf("%s is in layer %d; its longest dependency chain has %d edge(s)", c.Name, l, d)
		}
	}
	if n := len(layerOf) + len(o.Blocked); n != len(m.comps) {
		return fmt.Errorf("order lists %d components; there are %d", n, len(m.comps))
	}
	return nil
}

func orderRespectsRequires(t *T) {
	m := currentModel(t)
	o, err := parseOrder(grapher(t, "order"))
	if err != nil {
		t.Fatalf("graphctl order: %v", err)
	}
	if err := checkOrder(o, m); err != nil {
		t.Fatalf("graphctl order: %v", err)
	}
	t.Logf("%d layers", len(o.Layers))
}

// checkDot checks a DOT rendering of the graph against the model: every
// node an edge uses is declared; every component is a node, filled
// lightgreen when ACTIVE or DONE; every capability is an ellipse labelled
// with its name; and there is a red edge from each component to each
// capability it requires and a green one to each it provides.
func checkDot(g *dotGraph, m *graphModel) error {
	if !g.Directed {
		return errors.New("not a digraph")
	}
	if u := g.undeclared(); len(u) > 0 {
		return fmt.Errorf("edges use nodes that are never declared: %v", u)
	}
	capNode := map[string]string{} // capability → node ID
	for id, attrs := range g.Nodes {
		if attrs["shape"] != "ellipse" || strings.HasPrefix(id, "legend:") {
			continue
		}
		label := attrs["label"]
		if label == "" {
			label = id
		}
		if prev, dup := capNode[label]; dup {
			return fmt.Errorf("capability %s has two nodes, %q and %q", label, prev, id)
		}
		capNode[label] = id
	}
	edge := func(from, capName, colour string) error {
		id, ok := capNode[capName]
		if !ok {
			return fmt.Errorf("capability %s has no node", capName)
		}
		for _, e := range g.Edges {
			if e.From == from && e.To == id && e.Attrs["color"] == colour {
				return nil
			}
		}
		return fmt.Errorf("no %s edge %q -> %q", colour, from, id)
	}
	for _, c := range m.comps {
		attrs, ok := g.Nodes[c.Name]
		if !ok {
			return fmt.Errorf("component %s has no node", c.Name)
		}
		if (c.State == "ACTIVE" || c.State == "DONE") && attrs["fillcolor"] != "lightgreen" {
			return fmt.Errorf("%s is %s but filled %q", c.Name, c.State, attrs["fillcolor"])
		}
		for _, r := range c.Requires {
			if err := edge(c.Name, r, "red"); err != nil {
				return err
			}
		}
		for _, p := range c.Provides {
			if err := edge(c.Name, p, "green"); err != nil {
				return err
			}
		}
	}
	return nil
}

func dotIsComplete(t *T) {
	m := currentModel(t)
	out := grapher(t, "dot")
	g, err := parseDOT(out)
	if err != nil {
		t.Fatalf("graphctl dot is not valid DOT: %v", err)
	}
	if err := checkDot(g, m); err != nil {
		t.Fatalf("graphctl dot: %v", err)
	}
	t.Logf("%d nodes, %d edges", len(g.Nodes), len(g.Edges))
}

// checkTree checks the requirement tree below node, drawn for component
// name: one "requires:" entry per requirement, in order, naming who provides
// it, with the provider's own requirements nested below it, to full depth.
// A provider already expanded earlier in the tree may be cut ("see
// above"); expanded records who has been.
func checkTree(node *treeNode, name string, m *graphModel, expanded map[string]bool) error {
	reqs := m.byName[name].Requires
	if len(node.Children) != len(reqs) {
		return fmt.Errorf("%q has %d entries below it; %s has %d requirements", node.Text, len(node.Children), name, len(reqs))
	}
	for i, child := range node.Children {
		r, ok := parseRequirement(child.Text)
		if !ok {
			return fmt.Errorf("%q is not a requirement entry", child.Text)
		}
		provider := "kernel"
		if ps := m.declared[reqs[i]]; len(ps) > 0 {
			provider = ps[0]
		}
		if r.Capability != reqs[i] || !r.Up || !slices.Equal(r.Providers, []string{provider}) {
			return fmt.Errorf("%q; want requirement %d of %s, %s, UP from %s", child.Text, i+1, name, reqs[i], provider)
		}
		switch {
		case r.Cut == "see above" && expanded[provider]:
			if len(child.Children) > 0 {
				return fmt.Errorf("%q is cut but has entries below it", child.Text)
			}
		case r.Cut != "":
			return fmt.Errorf("%q is cut (%s), but %s was not expanded before", child.Text, r.Cut, provider)
		default:
			expanded[provider] = true
			if err := checkTree(child, provider, m, expanded); err != nil {
				return err
			}
		}
	}
	return nil
}

func treeFullDepth(t *T) {
	m := currentModel(t)
	out := grapher(t, "tree", monitor)
	sections, err := parseTree(out)
	if err != nil {
		t.Fatalf("graphctl tree %s: %v:\n%s", monitor, err, out)
	}
	if len(sections) != 2 || sections[0].Text != monitor || sections[1].Text != "provides:" {
		t.Fatalf("graphctl tree %s: want a %s section and a provides: section:\n%s", monitor, monitor, out)
	}
	if err := checkTree(sections[0], monitor, m, map[string]bool{monitor: true}); err != nil {
		t.Fatalf("graphctl tree %s: %v:\n%s", monitor, err, out)
	}
	var provides []string
	for _, c := range sections[1].Children {
		provides = append(provides, c.Text)
	}
	if want := m.byName[monitor].Provides; !slices.Equal(provides, want) {
		t.Fatalf("graphctl tree %s: provides %v; want %v", monitor, provides, want)
	}
	// The reference stopped two levels down; the chain to the kernel is
	// three (test.echo → network.configured → filesystem.sys).
	deep := sections[0].find(func(s string) bool { return strings.HasPrefix(s, "requires: filesystem.sys ") })
	if deep == nil {
		t.Fatalf("graphctl tree %s does not reach filesystem.sys:\n%s", monitor, out)
	}
}

func rdepsListsDependents(t *T) {
	m := currentModel(t)
	for _, p := range provided {
		var d struct {
			Capability string `json:"capability"`
			Components []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"components"`
		}
		graphJSON(t, &d, "rdeps", p.cap)
		var got []string
		for _, c := range d.Components {
			got = append(got, c.Name)
			if want := m.byName[c.Name].State; c.State != want {
				t.Fatalf("graphctl rdeps %s says %s is %s; status says %s", p.cap, c.Name, c.State, want)
			}
		}
		if want := m.requirers(p.cap); d.Capability != p.cap || !slices.Equal(got, want) {
			t.Fatalf("graphctl rdeps %s lists %v for %q; want %v", p.cap, got, d.Capability, want)
		}
	}
	text := grapher(t, "rdeps", "test.echo")
	want := "test.echo:\n  → test-monitor (ACTIVE)\nTotal: 1 component(s) depend on this capability\n"
	if text != want {
		t.Fatalf("graphctl rdeps test.echo =\n%s\nwant\n%s", text, want)
	}
}

var (
	pathHeader = regexp.MustCompile(`^Dependency path from '(\S+)' to '(\S+)' \((\d+) step\(s\)\):$`)
	pathStep   = regexp.MustCompile(`^  (\d+)\. (\S+)(?: requires (\S+))?$`)
)

// pathStepText is one step of `graphctl path`.
type pathStepText struct{ component, requires string }

// parsePath parses a found path: the heading, then numbered steps, each
// but the last naming the capability through which it depends on the next.
func parsePath(out string) (from, to string, steps []pathStepText, err error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	h := pathHeader.FindStringSubmatch(lines[0])
	if h == nil {
		return "", "", nil, fmt.Errorf("no path heading in %q", out)
	}
	for i, l := range lines[1:] {
		s := pathStep.FindStringSubmatch(l)
		if s == nil || s[1] != strconv.Itoa(i+1) {
			return "", "", nil, fmt.Errorf("line %d: %q is not step %d", i+2, l, i+1)
		}
		last := i == len(lines)-2
		if (s[3] == "") != last {
			return "", "", nil, fmt.Errorf("line %d: %q: every step but the last names a requirement", i+2, l)
		}
		steps = append(steps, pathStepText{s[2], s[3]})
	}
	if n, _ := strconv.Atoi(h[3]); n != len(steps)-1 || len(steps) < 2 {
		return "", "", nil, fmt.Errorf("heading says %s step(s), %d components are listed", h[3], len(steps))
	}
	return h[1], h[2], steps, nil
}

func pathFollowsRequires(t *T) {
	m := currentModel(t)
	const from, to = monitor, "network-setup"
	out := grapher(t, "path", from, to)
	gotFrom, gotTo, steps, err := parsePath(out)
	if err != nil {
		t.Fatalf("graphctl path %s %s: %v", from, to, err)
	}
	if gotFrom != from || gotTo != to || steps[0].component != from || steps[len(steps)-1].component != to {
		t.Fatalf("graphctl path %s %s answered for %s → %s:\n%s", from, to, gotFrom, gotTo, out)
	}
	for i, s := range steps[:len(steps)-1] {
		next := steps[i+1].component
		if !slices.Contains(m.byName[s.component].Requires, s.requires) || !slices.Contains(m.declared[s.requires], next) {
			t.Fatalf("graphctl path: %s requires %s, which %s provides? Not so:\n%s", s.component, s.requires, next, out)
		}
	}
	// test-monitor → test-echo-server or test-web-server → network-setup.
	if len(steps) != 3 {
		t.Fatalf("graphctl path %s %s took %d steps; the shortest has 2:\n%s", from, to, len(steps)-1, out)
	}
}

// parseAnalysis reads the "Label:   value" lines of `graphctl analyze`.
func parseAnalysis(out string) (map[string]string, error) {
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || lines[0] != "GRAPH ANALYSIS" || lines[1] != strings.Repeat("═", 14) {
		return nil, fmt.Errorf("no GRAPH ANALYSIS heading in %q", out)
	}
	values := map[string]string{}
	for _, l := range lines[2:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && !strings.HasPrefix(k, " ") && !strings.ContainsAny(k, "✓⚠") {
			values[k] = strings.TrimSpace(v)
		}
	}
	return values, nil
}

func analyzeMetrics(t *T) {
	m := currentModel(t)
	out := grapher(t, "analyze")
	values, err := parseAnalysis(out)
	if err != nil {
		t.Fatalf("graphctl analyze: %v", err)
	}
	requires, maxDepth, blocked := 0, 0, 0
	for _, c := range m.comps {
		requires += len(c.Requires)
		if d := m.depth(c.Name); d < 0 {
			blocked++
		} else {
			maxDepth = max(maxDepth, d)
		}
	}
	if maxDepth < 2 {
		t.Fatalf("the model's depth is %d; the image's graph should be at least 2 deep", maxDepth)
	}
	for _, w := range []struct {
		label string
		want  int
	}{
		{"Components", len(m.comps)},
		{"Total Dependencies", requires},
		{"Max Dependency Depth", maxDepth},
		{"Strongly Connected Comp", 1},
		{"Largest SCC", len(theCycle)},
		{"Blocked Components", blocked},
		{"Unprovided Capabilities", 1},
	} {
		if got := values[w.label]; got != strconv.Itoa(w.want) {
			t.Fatalf("graphctl analyze says %s: %q; want %d:\n%s", w.label, got, w.want, out)
		}
	}
	for _, want := range []string{
		"   Dependency cycle detected: test-cycle-a -> test-cycle-b -> test-cycle-a",
		"⚠️  Required but provided by no component: " + neverCap,
	} {
		if !slices.Contains(strings.Split(out, "\n"), want) {
			t.Fatalf("graphctl analyze lacks the line %q:\n%s", want, out)
		}
	}
}

// impact is `graphctl --json simulate remove` decoded.
type impact struct {
	Component string `json:"component"`
	Withdrawn []struct {
		Capability      string   `json:"capability"`
		StillProvidedBy []string `json:"still_provided_by"`
	} `json:"withdrawn"`
	Affected []struct {
		Name       string `json:"name"`
		Capability string `json:"capability"`
		Depth      int    `json:"depth"`
	} `json:"affected"`
}

// lostWith returns, by depth, the components that lose a requirement if
// name goes: depth 1 requires what it provides, depth 2 what those
// provide, and so on. No capability here has a second provider.
func (m *graphModel) lostWith(name string) [][]string {
	gone := map[string]bool{name: true}
	var levels [][]string
	for level := []string{name}; ; {
		var next []string
		for _, g := range level {
			for _, p := range m.byName[g].Provides {
				for _, r := range m.requirers(p) {
					if !gone[r] {
						gone[r] = true
						next = append(next, r)
					}
				}
			}
		}
		if len(next) == 0 {
			return levels
		}
		slices.Sort(next)
		levels = append(levels, next)
		level = next
	}
}

func simulateRemove(t *T) {
	m := currentModel(t)
	const name = "network-setup"
	var im impact
	graphJSON(t, &im, "simulate", "remove", name)
	if im.Component != name || len(im.Withdrawn) != 1 || im.Withdrawn[0].Capability != "network.configured" || len(im.Withdrawn[0].StillProvidedBy) != 0 {
		t.Fatalf("graphctl simulate remove %s withdraws %+v; want network.configured, lost", name, im.Withdrawn)
	}
	want := m.lostWith(name)
	var got [][]string
	for _, a := range im.Affected {
		for len(got) < a.Depth {
			got = append(got, nil)
		}
		got[a.Depth-1] = append(got[a.Depth-1], a.Name)
	}
	for _, l := range got {
		slices.Sort(l)
	}
	if len(want) < 2 || !slices.Contains(want[0], echoServer) || !slices.Contains(want[0], webServer) {
		t.Fatalf("the model's impact of removing %s is %v; want %s and %s directly, more transitively", name, want, echoServer, webServer)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("graphctl simulate remove %s affects %v by depth; want %v", name, got, want)
	}
	text := grapher(t, "simulate", "remove", name)
	for _, line := range []string{
		"Removing network-setup would:",
		"    → test-echo-server (requires network.configured, currently ACTIVE)",
		"    → test-web-server (requires network.configured, currently ACTIVE)",
	} {
		if !slices.Contains(strings.Split(text, "\n"), line) {
			t.Fatalf("graphctl simulate remove %s lacks the line %q:\n%s", name, line, text)
		}
	}
	// A simulation: the same processes still run.
	after := newGraphModel(waitStatus(t, 0, "the status", func([]component) string { return "" }))
	for _, c := range m.comps {
		if a := after.byName[c.Name]; a.State != c.State || a.PID != c.PID {
			t.Fatalf("after simulate remove, %s is %s pid %d; it was %s pid %d", c.Name, a.State, a.PID, c.State, c.PID)
		}
	}
}
