package graph

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"yakimg/yakiros/capability"
)

// n builds a node; lists are comma separated.
func n(name, state, requires, provides string) Node {
	return Node{Name: name, State: state, Requires: list(requires), Provides: list(provides)}
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// up builds registry entries from "cap=provider,provider" pairs; "cap=" is down.
func up(entries ...string) []capability.Capability {
	var out []capability.Capability
	for _, e := range entries {
		name, providers, _ := strings.Cut(e, "=")
		c := capability.Capability{Name: name, Status: capability.Down, Providers: list(providers)}
		if len(c.Providers) > 0 {
			c.Status = capability.Up
		}
		out = append(out, c)
	}
	return out
}

// fixtures are the small graphs the table tests share.
var fixtures = map[string][]Node{
	"chain": {
		n("a", "ACTIVE", "", "ca"),
		n("b", "INACTIVE", "ca", "cb"),
		n("c", "INACTIVE", "cb", "cc"),
	},
	"diamond": {
		n("top", "INACTIVE", "l,r", ""),
		n("left", "INACTIVE", "base", "l"),
		n("right", "INACTIVE", "base", "r"),
		n("bottom", "INACTIVE", "", "base"),
	},
	"two cycles": {
		n("a", "INACTIVE", "cb", "ca"),
		n("b", "INACTIVE", "ca", "cb"),
		n("e", "INACTIVE", "cc", "ce"),
		n("c", "INACTIVE", "cd", "cc"),
		n("d", "INACTIVE", "ce", "cd"),
	},
	"self-loop": {
		n("s", "INACTIVE", "cs", "cs"),
	},
	"cycle and rest": {
		n("kernel", "ACTIVE", "", "kernel.syscalls"),
		n("p", "INACTIVE", "cq,kernel.syscalls", "cp"),
		n("q", "INACTIVE", "cp", "cq"),
		n("r", "INACTIVE", "cp", "cr"),
		n("s", "INACTIVE", "cr", ""),
		n("u", "INACTIVE", "kernel.syscalls", "cu"),
		n("w", "INACTIVE", "cu", ""),
	},
	"multi-provider": {
		n("web", "INACTIVE", "dns", "http"),
		n("dns-a", "INACTIVE", "", "dns"),
		n("dns-b", "INACTIVE", "http", "dns"),
	},
	"unprovided": {
		n("web", "INACTIVE", "db", "http"),
		n("proxy", "INACTIVE", "http", ""),
	},
}

func TestSCCs(t *testing.T) {
	tests := []struct {
		fixture string
		want    []Cycle
	}{
		{"chain", []Cycle{}},
		{"diamond", []Cycle{}},
		{"two cycles", []Cycle{
			{Members: []string{"a", "b"}, Path: []string{"a", "b", "a"}},
			{Members: []string{"c", "d", "e"}, Path: []string{"c", "d", "e", "c"}},
		}},
		{"self-loop", []Cycle{{Members: []string{"s"}, Path: []string{"s", "s"}}}},
		{"cycle and rest", []Cycle{{Members: []string{"p", "q"}, Path: []string{"p", "q", "p"}}}},
		// dns-b is one provider of dns; it counts as a dependency of web.
		{"multi-provider", []Cycle{{Members: []string{"dns-b", "web"}, Path: []string{"dns-b", "web", "dns-b"}}}},
		{"unprovided", []Cycle{}},
	}
	for _, tt := range tests {
		g := New(fixtures[tt.fixture], nil)
		if got := g.SCCs(); !reflect.DeepEqual(nonNilCycles(got), tt.want) {
			t.Errorf("%s: SCCs() = %v; want %v", tt.fixture, got, tt.want)
		}
		for _, node := range fixtures[tt.fixture] {
			in := slices.ContainsFunc(tt.want, func(c Cycle) bool { return slices.Contains(c.Members, node.Name) })
			if g.InCycle(node.Name) != in {
				t.Errorf("%s: InCycle(%s) = %v; want %v", tt.fixture, node.Name, !in, in)
			}
		}
	}
}

func nonNilCycles(c []Cycle) []Cycle {
	if c == nil {
		return []Cycle{}
	}
	return c
}

func TestCycleString(t *testing.T) {
	g := New(fixtures["self-loop"], nil)
	if got, want := g.SCCs()[0].String(), "Dependency cycle detected: s -> s"; got != want {
		t.Errorf("Cycle.String() = %q; want %q", got, want)
	}
}

func TestLayers(t *testing.T) {
	tests := []struct {
		fixture string
		layers  [][]string
		blocked []Blocked
	}{
		{"chain", [][]string{{"a"}, {"b"}, {"c"}}, []Blocked{}},
		{"diamond", [][]string{{"bottom"}, {"left", "right"}, {"top"}}, []Blocked{}},
		{"two cycles", [][]string{}, []Blocked{{"a", true}, {"b", true}, {"c", true}, {"d", true}, {"e", true}}},
		{"self-loop", [][]string{}, []Blocked{{"s", true}}},
		// Depending only on the kernel is depending on nothing.
		{"cycle and rest", [][]string{{"kernel", "u"}, {"w"}}, []Blocked{{"p", true}, {"q", true}, {"r", false}, {"s", false}}},
		{"multi-provider", [][]string{{"dns-a"}}, []Blocked{{"dns-b", true}, {"web", true}}},
		// An unprovided requirement is no edge: web can be ordered, not started.
		{"unprovided", [][]string{{"web"}, {"proxy"}}, []Blocked{}},
	}
	for _, tt := range tests {
		got := New(fixtures[tt.fixture], nil).Layers()
		if !reflect.DeepEqual(got.Layers, tt.layers) || !reflect.DeepEqual(got.Blocked, tt.blocked) {
			t.Errorf("%s: Layers() = %v, blocked %v; want %v, blocked %v", tt.fixture, got.Layers, got.Blocked, tt.layers, tt.blocked)
		}
	}
}

func TestStartable(t *testing.T) {
	tests := []struct {
		fixture string
		caps    []capability.Capability
		want    []string
	}{
		// a is ACTIVE, so only what a's capability unblocks can start.
		{"chain", up("ca=a"), []string{"b"}},
		{"chain", up("ca=a", "cb="), []string{"b"}},
		{"diamond", nil, []string{"bottom"}},
		// State decides, not capabilities: bottom is still INACTIVE.
		{"diamond", up("base=bottom", "l=left"), []string{"left", "right", "bottom"}},
		// Cycle members never start, even when their requirement is up.
		{"self-loop", up("cs=other"), []string{}},
		{"cycle and rest", up("kernel.syscalls=kernel", "cp=x", "cq=x"), []string{"r", "u"}},
		{"unprovided", nil, []string{}},
	}
	for _, tt := range tests {
		if got := New(fixtures[tt.fixture], tt.caps).Startable(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s with %v: Startable() = %v; want %v", tt.fixture, tt.caps, got, tt.want)
		}
	}
}

// TestLongChain proves the SCC search is iterative and linear enough for the
// sizes the resolver promises: a 10,000-component chain has 10,000 layers,
// and the same chain closed into a ring is one cycle through all of them.
func TestLongChain(t *testing.T) {
	const size = 10000
	nodes := chainNodes(size)
	g := New(nodes, nil)
	if l := g.Layers(); len(l.Layers) != size || len(l.Blocked) != 0 {
		t.Fatalf("chain of %d: %d layers, %d blocked; want %d, 0", size, len(l.Layers), len(l.Blocked), size)
	}
	if a := g.Analyze(); a.MaxDepth != size-1 || a.Edges != size-1 {
		t.Errorf("chain of %d: max depth %d, edges %d; want %d, %d", size, a.MaxDepth, a.Edges, size-1, size-1)
	}
	nodes[0].Requires = []string{fmt.Sprintf("c%d", size-1)}
	cycles := New(nodes, nil).SCCs()
	if len(cycles) != 1 || len(cycles[0].Members) != size || len(cycles[0].Path) != size+1 {
		t.Fatalf("ring of %d: %d cycles; want one with %d members and a path of %d", size, len(cycles), size, size+1)
	}
}

// chainNodes returns n components, each requiring what the previous provides.
func chainNodes(size int) []Node {
	nodes := make([]Node, size)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%05d", i), State: "INACTIVE", Provides: []string{fmt.Sprintf("c%d", i)}}
		if i > 0 {
			nodes[i].Requires = []string{fmt.Sprintf("c%d", i-1)}
		}
	}
	return nodes
}

// fanOutNodes returns one component providing base and size-1 requiring it.
func fanOutNodes(size int) []Node {
	nodes := make([]Node, size)
	nodes[0] = Node{Name: "root", State: "INACTIVE", Provides: []string{"base"}}
	for i := 1; i < size; i++ {
		nodes[i] = Node{Name: fmt.Sprintf("leaf%05d", i), State: "INACTIVE", Requires: []string{"base"}, Provides: []string{fmt.Sprintf("c%d", i)}}
	}
	return nodes
}

// randomGraph declares random requirements and provisions over a small pool
// of capabilities, so multi-provider capabilities, self-loops and unprovided
// requirements all occur.
func randomGraph(r *rand.Rand) []Node {
	size, pool := 1+r.IntN(25), 1+r.IntN(30)
	pick := func(max int) []string {
		var out []string
		for range r.IntN(max + 1) {
			c := fmt.Sprintf("c%d", r.IntN(pool))
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		return out
	}
	nodes := make([]Node, size)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%02d", i), State: "INACTIVE", Requires: pick(3), Provides: pick(2)}
	}
	return nodes
}

// naiveEdges is the edge definition restated as a double loop.
func naiveEdges(nodes []Node) [][]bool {
	e := make([][]bool, len(nodes))
	for a := range nodes {
		e[a] = make([]bool, len(nodes))
		for b := range nodes {
			e[a][b] = nodes[b].Name != capability.Kernel &&
				slices.ContainsFunc(nodes[a].Requires, func(c string) bool { return slices.Contains(nodes[b].Provides, c) })
		}
	}
	return e
}

// naiveReach returns reach[a][b]: b is reachable from a in one or more edges.
func naiveReach(e [][]bool) [][]bool {
	reach := make([][]bool, len(e))
	for a := range e {
		reach[a] = make([]bool, len(e))
		stack := []int{a}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for w, ok := range e[v] {
				if ok && !reach[a][w] {
					reach[a][w] = true
					stack = append(stack, w)
				}
			}
		}
	}
	return reach
}

// TestSCCsMatchReachability compares Tarjan with the definition: a and b are
// in one cycle when each reaches the other, and a is in a cycle when it
// reaches itself.
func TestSCCsMatchReachability(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 1000 {
		nodes := randomGraph(r)
		e := naiveEdges(nodes)
		reach := naiveReach(e)
		var want [][]string
		for a := range nodes {
			if !reach[a][a] {
				continue
			}
			var members []string
			for b := range nodes {
				if b == a || reach[a][b] && reach[b][a] {
					members = append(members, nodes[b].Name)
				}
			}
			if members[0] == nodes[a].Name { // list each component once, from its first member
				want = append(want, members)
			}
		}
		g := New(nodes, nil)
		var got [][]string
		for _, c := range g.SCCs() {
			got = append(got, c.Members)
			checkCyclePath(t, nodes, e, c)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("graph %d %v: SCCs() members = %v; want %v", iter, nodes, got, want)
		}
		checkLayers(t, nodes, e, reach, g.Layers())
	}
}

// checkCyclePath verifies that c.Path is a cycle of real edges within c.
func checkCyclePath(t *testing.T, nodes []Node, e [][]bool, c Cycle) {
	t.Helper()
	pos := map[string]int{}
	for i, n := range nodes {
		pos[n.Name] = i
	}
	p := c.Path
	if len(p) < 2 || p[0] != c.Members[0] || p[len(p)-1] != c.Members[0] {
		t.Fatalf("cycle %v: path %v does not start and end at %s", c.Members, p, c.Members[0])
	}
	for i := 0; i+1 < len(p); i++ {
		if !slices.Contains(c.Members, p[i+1]) || !e[pos[p[i]]][pos[p[i+1]]] {
			t.Fatalf("cycle %v: path %v: no edge %s -> %s inside the cycle", c.Members, p, p[i], p[i+1])
		}
	}
}

// checkLayers verifies that the blocked components are exactly those
// reaching a cycle (or in one), that every edge goes to a lower layer, and
// that each layer is as low as it can be.
func checkLayers(t *testing.T, nodes []Node, e, reach [][]bool, o Order) {
	t.Helper()
	layer := map[string]int{}
	for i, l := range o.Layers {
		for _, name := range l {
			layer[name] = i
		}
	}
	for _, b := range o.Blocked {
		layer[b.Name] = -1
	}
	if len(layer) != len(nodes) {
		t.Fatalf("%v: Layers() places %d of %d components: %v", nodes, len(layer), len(nodes), o)
	}
	for a := range nodes {
		blocked := reach[a][a]
		for i := range nodes {
			blocked = blocked || reach[a][i] && reach[i][i]
		}
		if got := layer[nodes[a].Name] < 0; got != blocked {
			t.Fatalf("%v: %s blocked = %v; want %v", nodes, nodes[a].Name, got, blocked)
		}
		if blocked {
			continue
		}
		la, below := layer[nodes[a].Name], -1
		for b := range nodes {
			if e[a][b] {
				if lb := layer[nodes[b].Name]; lb >= la {
					t.Fatalf("%v: edge %s (layer %d) -> %s (layer %d) does not go down", nodes, nodes[a].Name, la, nodes[b].Name, lb)
				}
				below = max(below, layer[nodes[b].Name])
			}
		}
		if below != la-1 {
			t.Fatalf("%v: %s is in layer %d, but its deepest dependency is in layer %d", nodes, nodes[a].Name, la, below)
		}
	}
}

// TestLayersOfRandomDAGs checks layering on acyclic graphs of every shape:
// nothing is blocked and every edge goes down.
func TestLayersOfRandomDAGs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 300 {
		size := 1 + r.IntN(40)
		nodes := make([]Node, size)
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("n%02d", r.IntN(100)*100+i), State: "INACTIVE", Provides: []string{fmt.Sprintf("c%d", i)}}
			for range r.IntN(4) {
				if i > 0 {
					nodes[i].Requires = append(nodes[i].Requires, fmt.Sprintf("c%d", r.IntN(i)))
				}
			}
		}
		g := New(nodes, nil)
		o := g.Layers()
		if len(o.Blocked) != 0 || len(g.SCCs()) != 0 {
			t.Fatalf("DAG %d %v: blocked %v, cycles %v; want none", iter, nodes, o.Blocked, g.SCCs())
		}
		e := naiveEdges(nodes)
		checkLayers(t, nodes, e, naiveReach(e), o)
	}
}
