// Package graph answers questions about the capability graph: which component
// depends on which, every dependency cycle (Tarjan's strongly connected
// components), the layers components can start in, requirement trees and the
// impact of losing a component. It is pure and has no side effects: a Graph
// is built from a snapshot of the components and the capability registry and
// never changes, so the resolver builds a fresh one whenever it needs one.
//
// Every question has a data answer, a struct with JSON tags (what the control
// socket sends as "data"), whose Text method renders the layout the reference
// implementation shows humans.
//
// Edges. Component A depends on component B when A requires a capability that
// B declares in its provides. The declarations alone make the edges; whether a
// capability is up only colours the answers. Choices:
//   - With several declaring providers, A depends on each of them, as in the
//     reference: a cycle through any provider is a cycle, even if another
//     provider could break it at run time, because then whether the graph
//     resolves depends on which provider happens to come up first.
//   - A component requiring what it provides depends on itself (a cycle).
//   - Capabilities of the kernel pseudo-component create no edges: they are up
//     before anything runs, so "depends only on the kernel" is "depends on
//     nothing".
//   - Optional requirements create no edges: they are never waited for, so
//     they can neither delay a start nor deadlock one. Tree, Rdeps and Dot
//     still show them.
//
// Lists of components follow the order of the nodes given to New (the
// resolver's table order) unless their field says they are sorted (cycle
// members, layers, blocked components).
package graph

import (
	"slices"

	"yakimg/yakiros/capability"
)

// Node is one component as the graph sees it.
type Node struct {
	Name     string
	State    string // the resolver's state name: INACTIVE, ACTIVE, CYCLE, ...
	Requires []string
	Provides []string
	Optional []string
}

// States that mean a component is running or has finished: everything else
// (INACTIVE, FAILED, CYCLE) is waiting for something.
var runningOrDone = map[string]bool{
	"STARTING": true, "READY_WAIT": true, "ACTIVE": true, "DEGRADED": true, "STOPPING": true, "DONE": true,
}

// inactive is the state of a component that may be started.
const inactive = "INACTIVE"

// Graph is the analysed snapshot. It is immutable, so it is safe for
// concurrent use.
type Graph struct {
	nodes    []Node
	index    map[string]int32    // name → position in nodes (the first, if a name repeats)
	declared map[string][]int32  // capability → nodes declaring it, in node order
	registry map[string][]string // capability → components providing it now; empty = down
	kernel   int32               // position of the kernel pseudo-component, -1 if absent

	// Edges in compressed form: the components v depends on are
	// succ[start[v]:start[v+1]], without duplicates.
	start []int32
	succ  []int32

	cycles  []Cycle // sorted by first member
	inCycle []bool
	layer   []int32 // length of the longest dependency chain below; -1 = blocked by a cycle
}

// New analyses nodes, with caps the current capability registry (which
// capabilities are up and who provides them). It keeps the nodes' slices, so
// the caller must not modify them afterwards.
func New(nodes []Node, caps []capability.Capability) *Graph {
	g := &Graph{
		nodes:    slices.Clone(nodes),
		index:    make(map[string]int32, len(nodes)),
		declared: make(map[string][]int32, len(nodes)),
		registry: make(map[string][]string, len(caps)),
		kernel:   -1,
	}
	for i, n := range g.nodes {
		if _, dup := g.index[n.Name]; !dup {
			g.index[n.Name] = int32(i)
		}
		for _, c := range n.Provides {
			if ps := g.declared[c]; len(ps) == 0 || ps[len(ps)-1] != int32(i) {
				g.declared[c] = append(ps, int32(i))
			}
		}
	}
	if k, ok := g.index[capability.Kernel]; ok {
		g.kernel = k
	}
	for _, c := range caps {
		g.registry[c.Name] = c.Providers
	}
	g.buildEdges()
	g.analyse()
	return g
}

func (g *Graph) buildEdges() {
	n := len(g.nodes)
	g.start = make([]int32, n+1)
	mark := make([]int32, n) // mark[p] == v+1 once the edge v → p is recorded
	for v := range g.nodes {
		g.start[v] = int32(len(g.succ))
		for _, c := range g.nodes[v].Requires {
			for _, p := range g.declared[c] {
				if p == g.kernel || mark[p] == int32(v+1) {
					continue
				}
				mark[p] = int32(v + 1)
				g.succ = append(g.succ, p)
			}
		}
	}
	g.start[n] = int32(len(g.succ))
}

// successors returns the components v depends on.
func (g *Graph) successors(v int32) []int32 {
	return g.succ[g.start[v]:g.start[v+1]]
}

// up reports whether capability c is provided by anyone now.
func (g *Graph) up(c string) bool {
	return len(g.registry[c]) > 0
}

// providers returns who provides c now if it is up, else who declares it.
func (g *Graph) providers(c string) []string {
	if g.up(c) {
		return g.registry[c]
	}
	return g.names(g.declared[c])
}

func (g *Graph) names(vs []int32) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = g.nodes[v].Name
	}
	return out
}

// InCycle reports whether the named component is a member of a dependency
// cycle.
func (g *Graph) InCycle(name string) bool {
	v, ok := g.index[name]
	return ok && g.inCycle[v]
}

// Startable returns the INACTIVE components, in node order, that could start
// now: every requirement is up and they are in no cycle.
func (g *Graph) Startable() []string {
	out := []string{}
	for v, n := range g.nodes {
		if n.State != inactive || g.inCycle[v] {
			continue
		}
		if !slices.ContainsFunc(n.Requires, func(c string) bool { return !g.up(c) }) {
			out = append(out, n.Name)
		}
	}
	return out
}

// nonNil keeps empty lists as [] rather than null in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
