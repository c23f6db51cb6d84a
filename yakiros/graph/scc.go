package graph

import (
	"fmt"
	"slices"
	"strings"
)

// Cycle is a strongly connected component that is a cycle: two or more
// components that depend on each other, or one that depends on itself.
type Cycle struct {
	Members []string `json:"members"` // sorted
	// Path is one concrete cycle through Members[0], ending where it
	// starts. It shows how the members depend on each other; in a component
	// with many members it need not visit all of them.
	Path []string `json:"path"`
}

// String is the message the resolver logs and the reference prints.
func (c Cycle) String() string {
	return "Dependency cycle detected: " + strings.Join(c.Path, " -> ")
}

// analyse finds the strongly connected components with Tarjan's algorithm,
// iteratively so that long chains cannot exhaust the stack, and computes each
// component's layer on the way: Tarjan emits a component only after every
// component it depends on, which is exactly the order layering needs.
func (g *Graph) analyse() {
	n := int32(len(g.nodes))
	index := make([]int32, n) // discovery order + 1; 0 = not yet visited
	low := make([]int32, n)
	comp := make([]int32, n) // which strongly connected component v is in
	onStack := make([]bool, n)
	g.inCycle = make([]bool, n)
	g.layer = make([]int32, n)
	var stack []int32
	type frame struct{ v, next int32 } // next: position in successors(v) to visit
	var calls []frame
	counter, comps := int32(0), int32(0)

	visit := func(v int32) {
		counter++
		index[v], low[v] = counter, counter
		stack = append(stack, v)
		onStack[v] = true
		calls = append(calls, frame{v: v})
	}
	for root := range n {
		if index[root] != 0 {
			continue
		}
		visit(root)
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			v := f.v
			if succ := g.successors(v); f.next < int32(len(succ)) {
				w := succ[f.next]
				f.next++
				switch {
				case index[w] == 0:
					visit(w)
				case onStack[w]:
					low[v] = min(low[v], index[w])
				}
				continue
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				parent := calls[len(calls)-1].v
				low[parent] = min(low[parent], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			i := len(stack) - 1
			for stack[i] != v {
				i--
			}
			members := stack[i:]
			stack = stack[:i]
			for _, m := range members {
				onStack[m] = false
				comp[m] = comps
			}
			g.place(members, comp, comps)
			comps++
		}
	}
	slices.SortFunc(g.cycles, func(a, b Cycle) int { return strings.Compare(a.Members[0], b.Members[0]) })
}

// place records the strongly connected component members (number id), whose
// dependencies outside it are all placed already.
func (g *Graph) place(members []int32, comp []int32, id int32) {
	if v := members[0]; len(members) == 1 && !slices.Contains(g.successors(v), v) {
		g.layer[v] = 0
		for _, w := range g.successors(v) {
			if g.layer[w] < 0 {
				g.layer[v] = -1
				break
			}
			g.layer[v] = max(g.layer[v], g.layer[w]+1)
		}
		return
	}
	names := make([]string, len(members))
	first := members[0]
	for i, m := range members {
		g.inCycle[m], g.layer[m] = true, -1
		names[i] = g.nodes[m].Name
		if names[i] < g.nodes[first].Name {
			first = m
		}
	}
	slices.Sort(names)
	g.cycles = append(g.cycles, Cycle{Members: names, Path: g.cyclePath(first, comp, id)})
}

// cyclePath returns a shortest cycle from m back to m within component id.
func (g *Graph) cyclePath(m int32, comp []int32, id int32) []string {
	parent := map[int32]int32{m: -1}
	for queue := []int32{m}; len(queue) > 0; queue = queue[1:] {
		v := queue[0]
		for _, w := range g.successors(v) {
			if w == m {
				var back []int32
				for u := v; u != m; u = parent[u] {
					back = append(back, u)
				}
				path := []string{g.nodes[m].Name}
				for i := len(back) - 1; i >= 0; i-- {
					path = append(path, g.nodes[back[i]].Name)
				}
				return append(path, g.nodes[m].Name)
			}
			if _, seen := parent[w]; !seen && comp[w] == id {
				parent[w] = v
				queue = append(queue, w)
			}
		}
	}
	// Unreachable: every member of a cyclic component lies on a cycle.
	panic(fmt.Sprintf("graph: component %q is in no cycle", g.nodes[m].Name))
}

// SCCs returns every strongly connected component that is a cycle, sorted by
// first member.
func (g *Graph) SCCs() []Cycle {
	return slices.Clone(g.cycles)
}

// CycleCheck answers check-cycles.
type CycleCheck struct {
	Cycles []Cycle `json:"cycles"`
}

// CheckCycles reports every dependency cycle (the reference stopped at the
// first).
func (g *Graph) CheckCycles() CycleCheck {
	return CycleCheck{Cycles: g.SCCs()}
}

// Text renders the reference's check-cycles layout, one block per cycle.
func (c CycleCheck) Text() string {
	if len(c.Cycles) == 0 {
		return "✓ No dependency cycles detected\nThe component graph is valid.\n"
	}
	var b strings.Builder
	involved := 0
	for _, cy := range c.Cycles {
		fmt.Fprintf(&b, "CYCLE DETECTED: %s\n\nComponents involved in the cycle:\n", cy)
		for i, m := range cy.Members {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, m)
		}
		b.WriteString("\n")
		involved += len(cy.Members)
	}
	fmt.Fprintf(&b, "Total: %d dependency cycle(s) involving %d component(s)\n", len(c.Cycles), involved)
	return b.String()
}

// SCCList answers scc. Only components that are cycles are listed: every
// other component is a strongly connected component of its own, and listing
// those would say nothing; they are counted in Acyclic.
type SCCList struct {
	SCCs    []Cycle `json:"sccs"`
	Acyclic int     `json:"acyclic"` // components in no cycle
}

// SCCReport lists the strongly connected components.
func (g *Graph) SCCReport() SCCList {
	l := SCCList{SCCs: g.SCCs(), Acyclic: len(g.nodes)}
	for _, c := range l.SCCs {
		l.Acyclic -= len(c.Members)
	}
	return l
}

// Text renders the scc command's layout.
func (l SCCList) Text() string {
	var b strings.Builder
	if len(l.SCCs) == 0 {
		fmt.Fprintf(&b, "No strongly connected components found\n(none of the %d components is in a dependency cycle)\n", l.Acyclic)
		return b.String()
	}
	largest := 0
	for _, c := range l.SCCs {
		largest = max(largest, len(c.Members))
	}
	fmt.Fprintf(&b, "Strongly connected components: %d (largest: %d components)\n", len(l.SCCs), largest)
	for i, c := range l.SCCs {
		kind := fmt.Sprintf("%d components", len(c.Members))
		if len(c.Members) == 1 {
			kind = "self-dependency"
		}
		fmt.Fprintf(&b, "  %d. %s (%s)\n     cycle: %s\n", i+1, strings.Join(c.Members, ", "), kind, strings.Join(c.Path, " -> "))
	}
	fmt.Fprintf(&b, "\nComponents in no cycle: %d\n", l.Acyclic)
	return b.String()
}

// Order answers order: the topological layers of the acyclic part.
type Order struct {
	// Layers[0] depends on nothing (or only on the kernel); a component in
	// Layers[i] depends on something in Layers[i-1] and on nothing in a later
	// layer. Each layer is sorted.
	Layers [][]string `json:"layers"`
	// Blocked are the cycle members and every component depending on one,
	// sorted: they have no place in the order.
	Blocked []Blocked `json:"blocked"`
}

// Blocked is a component that cannot be ordered.
type Blocked struct {
	Name    string `json:"name"`
	InCycle bool   `json:"in_cycle"` // false: it depends on a cycle
}

// Layers orders the acyclic part of the graph in layers.
func (g *Graph) Layers() Order {
	o := Order{Layers: [][]string{}, Blocked: []Blocked{}}
	for v, n := range g.nodes {
		l := int(g.layer[v])
		if l < 0 {
			o.Blocked = append(o.Blocked, Blocked{Name: n.Name, InCycle: g.inCycle[v]})
			continue
		}
		for len(o.Layers) <= l {
			o.Layers = append(o.Layers, []string{})
		}
		o.Layers[l] = append(o.Layers[l], n.Name)
	}
	for _, l := range o.Layers {
		slices.Sort(l)
	}
	slices.SortFunc(o.Blocked, func(a, b Blocked) int { return strings.Compare(a.Name, b.Name) })
	return o
}

// Text renders the order command's layout.
func (o Order) Text() string {
	var b strings.Builder
	b.WriteString("TOPOLOGICAL ORDER\n" + strings.Repeat("═", 17) + "\n")
	ordered := 0
	for i, l := range o.Layers {
		fmt.Fprintf(&b, "Layer %d: %s\n", i, strings.Join(l, ", "))
		ordered += len(l)
	}
	if len(o.Blocked) > 0 {
		b.WriteString("\nBlocked by dependency cycles:\n")
		for _, bl := range o.Blocked {
			why := "depends on a cycle"
			if bl.InCycle {
				why = "in a cycle"
			}
			fmt.Fprintf(&b, "  %s (%s)\n", bl.Name, why)
		}
	}
	fmt.Fprintf(&b, "\nTotal: %d component(s) in %d layer(s), %d blocked\n", ordered, len(o.Layers), len(o.Blocked))
	return b.String()
}
