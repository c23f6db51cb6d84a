package graph

import (
	"fmt"
	"slices"
	"strings"
)

// Analysis answers analyze.
type Analysis struct {
	Components   int `json:"components"`   // including the kernel pseudo-component
	Capabilities int `json:"capabilities"` // every name provided, required or in the registry
	// Requirements is the sum of the components' requires lists (the
	// reference's "Total Dependencies"); Edges counts component-to-component
	// dependencies (see the package comment).
	Requirements    int     `json:"requirements"`
	AvgRequirements float64 `json:"avg_requirements"`
	Edges           int     `json:"edges"`
	// MaxDepth is the longest dependency chain in the acyclic part, in
	// edges: 0 when nothing depends on anything.
	MaxDepth   int     `json:"max_depth"`
	SCCs       int     `json:"sccs"`        // strongly connected components that are cycles
	LargestSCC int     `json:"largest_scc"` // members of the largest of them; 0 without cycles
	Blocked    int     `json:"blocked"`     // cycle members and components depending on them
	Cycles     []Cycle `json:"cycles"`
	// NoDependents are the components nothing depends on, in node order;
	// not the kernel, which everything depends on without edges.
	NoDependents []string `json:"no_dependents"`
	// Unprovided are the required capabilities that no component declares
	// and that are not up, sorted: their requirers can never start.
	Unprovided []string `json:"unprovided"`
}

// Analyze computes the graph's metrics.
func (g *Graph) Analyze() Analysis {
	a := Analysis{
		Components:   len(g.nodes),
		Capabilities: len(g.capabilities()),
		Edges:        len(g.succ),
		Cycles:       g.SCCs(),
		NoDependents: []string{},
		Unprovided:   g.unprovided(),
	}
	a.SCCs = len(a.Cycles)
	for _, c := range a.Cycles {
		a.LargestSCC = max(a.LargestSCC, len(c.Members))
	}
	dependents := make([]int, len(g.nodes))
	for _, w := range g.succ {
		dependents[w]++
	}
	for v, n := range g.nodes {
		a.Requirements += len(n.Requires)
		a.MaxDepth = max(a.MaxDepth, int(g.layer[v]))
		if g.layer[v] < 0 {
			a.Blocked++
		}
		if dependents[v] == 0 && int32(v) != g.kernel {
			a.NoDependents = append(a.NoDependents, n.Name)
		}
	}
	if a.Components > 0 {
		a.AvgRequirements = float64(a.Requirements) / float64(a.Components)
	}
	return a
}

// capabilities returns every capability name the graph knows.
func (g *Graph) capabilities() map[string]bool {
	caps := make(map[string]bool, len(g.declared)+len(g.registry))
	for c := range g.declared {
		caps[c] = true
	}
	for c := range g.registry {
		caps[c] = true
	}
	for _, n := range g.nodes {
		for _, c := range n.Requires {
			caps[c] = true
		}
		for _, c := range n.Optional {
			caps[c] = true
		}
	}
	return caps
}

func (g *Graph) unprovided() []string {
	out := []string{}
	for _, n := range g.nodes {
		for _, c := range n.Requires {
			if len(g.declared[c]) == 0 && !g.up(c) && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Text renders the reference's analyze layout, with the metrics it left at 0
// computed and a few more lines.
func (a Analysis) Text() string {
	var b strings.Builder
	b.WriteString("GRAPH ANALYSIS\n" + strings.Repeat("═", 14) + "\n\n")
	line := func(label string, value any) { fmt.Fprintf(&b, "%-26s%v\n", label+":", value) }
	line("Components", a.Components)
	line("Capabilities", a.Capabilities)
	line("Total Dependencies", a.Requirements)
	line("Avg Dependencies/Comp", fmt.Sprintf("%.2f", a.AvgRequirements))
	line("Dependency Edges", a.Edges)
	line("Max Dependency Depth", a.MaxDepth)
	line("Strongly Connected Comp", a.SCCs)
	line("Largest SCC", a.LargestSCC)
	line("Blocked Components", a.Blocked)
	line("No Dependents", len(a.NoDependents))
	line("Unprovided Capabilities", len(a.Unprovided))
	b.WriteString("\n")
	if len(a.Cycles) == 0 {
		b.WriteString("✓ Graph Status: No cycles detected\n")
	} else {
		b.WriteString("⚠️  WARNING: Dependency cycles detected!\n")
		for _, c := range a.Cycles {
			fmt.Fprintf(&b, "   %s\n", c)
		}
	}
	if len(a.Unprovided) > 0 {
		fmt.Fprintf(&b, "⚠️  Required but provided by no component: %s\n", strings.Join(a.Unprovided, ", "))
	}
	return b.String()
}

// Validation answers validate.
type Validation struct {
	Valid    bool     `json:"valid"`    // no rejected declaration and no cycle
	Rejected []string `json:"rejected"` // one "file:line: message" per rejected declaration
	Cycles   []Cycle  `json:"cycles"`
	// Warnings name requirements no component declares; they do not make
	// the graph invalid (the capability may be meant to come later).
	Warnings []string `json:"warnings"`
}

// Validate checks the graph, with rejected the errors of the declarations the
// loader rejected. Unlike the reference's, it fails on every cycle and every
// rejected declaration, and lists each.
func (g *Graph) Validate(rejected []error) Validation {
	v := Validation{Rejected: []string{}, Cycles: g.SCCs(), Warnings: []string{}}
	for _, err := range rejected {
		v.Rejected = append(v.Rejected, err.Error())
	}
	for _, n := range g.nodes {
		for _, c := range n.Requires {
			if len(g.declared[c]) == 0 && !g.up(c) {
				v.Warnings = append(v.Warnings, fmt.Sprintf("component '%s' requires '%s', which no component provides", n.Name, c))
			}
		}
	}
	v.Valid = len(v.Rejected) == 0 && len(v.Cycles) == 0
	return v
}

// Text renders the reference's validate layout.
func (v Validation) Text() string {
	var b strings.Builder
	if v.Valid {
		b.WriteString("✓ Graph validation passed\n  No dependency cycles detected\n  All components have valid configurations\n")
	} else {
		fmt.Fprintf(&b, "✗ Graph validation failed: %d rejected declaration(s), %d dependency cycle(s)\n", len(v.Rejected), len(v.Cycles))
		for _, r := range v.Rejected {
			fmt.Fprintf(&b, "  Rejected: %s\n", r)
		}
		for _, c := range v.Cycles {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(&b, "  Warning: %s\n", w)
	}
	return b.String()
}

// Route answers path.
type Route struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Found bool   `json:"found"`
	Steps []Step `json:"steps"` // from the first component to the last
	// Reason says why no path exists.
	Reason string `json:"reason,omitempty"`
}

// Step is one component on a path.
type Step struct {
	Component string `json:"component"`
	// Requires is the capability through which it depends on the next
	// step; empty on the last.
	Requires string `json:"requires,omitempty"`
}

// Path finds a shortest dependency path from one component to another: from
// depends on the next step, which depends on the next, and so on, to to.
// Either name may also be a capability, which stands for the components
// declaring it (the reference's path took capability names). It is an error
// only when a name is neither.
func (g *Graph) Path(from, to string) (Route, error) {
	r := Route{From: from, To: to, Steps: []Step{}}
	caps := g.capabilities()
	sources, err := g.endpoint(from, caps)
	if err != nil {
		return r, err
	}
	targets, err := g.endpoint(to, caps)
	if err != nil {
		return r, err
	}
	path := g.shortest(sources, targets)
	switch {
	case path != nil:
		r.Found = true
		for i, v := range path {
			s := Step{Component: g.nodes[v].Name}
			if i+1 < len(path) {
				s.Requires = g.via(v, path[i+1])
			}
			r.Steps = append(r.Steps, s)
		}
	case len(sources) == 0:
		r.Reason = fmt.Sprintf("no component provides '%s'", from)
	case len(targets) == 0:
		r.Reason = fmt.Sprintf("no component provides '%s'", to)
	case !slices.ContainsFunc(targets, func(v int32) bool { return v != g.kernel }):
		r.Reason = fmt.Sprintf("the kernel's capabilities are always up, so depending on them is no dependency on '%s'", to)
	default:
		r.Reason = fmt.Sprintf("'%s' does not depend on '%s', directly or indirectly", from, to)
		if g.shortest(targets, sources) != nil {
			r.Reason += fmt.Sprintf("; '%s' depends on '%s'", to, from)
		}
	}
	return r, nil
}

// endpoint resolves a component name, or a capability name to its declaring
// components.
func (g *Graph) endpoint(name string, caps map[string]bool) ([]int32, error) {
	if v, ok := g.index[name]; ok {
		return []int32{v}, nil
	}
	if !caps[name] {
		return nil, fmt.Errorf("'%s' is neither a component nor a capability", name)
	}
	return g.declared[name], nil
}

// shortest returns a shortest path from any of sources to any of targets,
// breadth first, or nil.
func (g *Graph) shortest(sources, targets []int32) []int32 {
	isTarget := make(map[int32]bool, len(targets))
	for _, t := range targets {
		isTarget[t] = true
	}
	parent := map[int32]int32{}
	var queue []int32
	for _, s := range sources {
		if _, seen := parent[s]; !seen {
			parent[s] = -1
			queue = append(queue, s)
		}
	}
	for ; len(queue) > 0; queue = queue[1:] {
		v := queue[0]
		if isTarget[v] {
			var path []int32
			for u := v; u != -1; u = parent[u] {
				path = append(path, u)
			}
			slices.Reverse(path)
			return path
		}
		for _, w := range g.successors(v) {
			if _, seen := parent[w]; !seen {
				parent[w] = v
				queue = append(queue, w)
			}
		}
	}
	return nil
}

// via returns the first requirement of v that w declares.
func (g *Graph) via(v, w int32) string {
	for _, c := range g.nodes[v].Requires {
		if slices.Contains(g.declared[c], w) {
			return c
		}
	}
	return ""
}

// Text renders the path layout.
func (r Route) Text() string {
	var b strings.Builder
	if !r.Found {
		fmt.Fprintf(&b, "Dependency path from '%s' to '%s':\n  none: %s\n", r.From, r.To, r.Reason)
		return b.String()
	}
	fmt.Fprintf(&b, "Dependency path from '%s' to '%s' (%d step(s)):\n", r.From, r.To, len(r.Steps)-1)
	for i, s := range r.Steps {
		fmt.Fprintf(&b, "  %d. %s", i+1, s.Component)
		if s.Requires != "" {
			b.WriteString(" requires " + s.Requires)
		}
		b.WriteString("\n")
	}
	return b.String()
}
