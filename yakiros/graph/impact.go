package graph

import (
	"fmt"
	"slices"
	"strings"
)

// Dependents answers rdeps: the components requiring a capability.
type Dependents struct {
	Capability string      `json:"capability"`
	Components []Dependent `json:"components"`
}

// Dependent is one component in Dependents.
type Dependent struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Optional bool   `json:"optional"` // it lists the capability under [optional]
}

// Rdeps returns the components that require capability c, directly.
func (g *Graph) Rdeps(c string) Dependents {
	d := Dependents{Capability: c, Components: []Dependent{}}
	for _, n := range g.nodes {
		switch {
		case slices.Contains(n.Requires, c):
			d.Components = append(d.Components, Dependent{Name: n.Name, State: n.State})
		case slices.Contains(n.Optional, c):
			d.Components = append(d.Components, Dependent{Name: n.Name, State: n.State, Optional: true})
		}
	}
	return d
}

// Text renders the reference's rdeps layout.
func (d Dependents) Text() string {
	var b strings.Builder
	b.WriteString(d.Capability + ":\n")
	for _, c := range d.Components {
		opt := ""
		if c.Optional {
			opt = ", optional"
		}
		fmt.Fprintf(&b, "  → %s (%s%s)\n", c.Name, c.State, opt)
	}
	if len(d.Components) == 0 {
		b.WriteString("  (no components depend on this capability)\n")
	} else {
		fmt.Fprintf(&b, "Total: %d component(s) depend on this capability\n", len(d.Components))
	}
	return b.String()
}

// Impact answers simulate remove.
type Impact struct {
	Component string      `json:"component"`
	Withdrawn []Withdrawn `json:"withdrawn"` // what the component provides
	// Affected lose a required capability: directly (Depth 1, one the
	// removed component provides) or transitively (a capability lost by an
	// affected component). Sorted by depth, then node order.
	Affected []Affected `json:"affected"`
}

// Withdrawn is a capability the removed component provides.
type Withdrawn struct {
	Capability string `json:"capability"`
	// StillProvidedBy are the providers left once the removal has
	// propagated; empty means the capability is lost.
	StillProvidedBy []string `json:"still_provided_by"`
}

// Affected is a component that would lose a required capability.
type Affected struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Capability string `json:"capability"` // the lost requirement that affects it
	Depth      int    `json:"depth"`      // 1 = directly
}

// SimulateRemove previews, without changing anything, what removing the named
// component would take down, directly and transitively. A capability is lost
// when no provider is left outside the removed and affected components;
// declared providers count as well as those providing it now, so the answer
// does not depend on what happens to be running.
func (g *Graph) SimulateRemove(name string) (Impact, error) {
	x, ok := g.index[name]
	if !ok {
		return Impact{}, fmt.Errorf("component '%s' not found", name)
	}
	im := Impact{Component: name, Withdrawn: []Withdrawn{}, Affected: []Affected{}}

	requirers := map[string][]int32{}
	for v, n := range g.nodes {
		for _, c := range n.Requires {
			requirers[c] = append(requirers[c], int32(v))
		}
	}
	gone := map[int32]bool{x: true}
	left := map[string]int{} // capability → providers not gone, counted once touched
	type lostCap struct {
		name  string
		depth int
	}
	var queue []lostCap
	leave := func(v int32, depth int) {
		for _, c := range g.nodes[v].Provides {
			n, counted := left[c]
			if !counted {
				n = len(g.allProviders(c))
			}
			left[c] = n - 1
			if n == 1 {
				queue = append(queue, lostCap{c, depth})
			}
		}
	}
	leave(x, 1)
	for ; len(queue) > 0; queue = queue[1:] {
		c := queue[0]
		for _, v := range requirers[c.name] {
			if gone[v] {
				continue
			}
			gone[v] = true
			im.Affected = append(im.Affected, Affected{Name: g.nodes[v].Name, State: g.nodes[v].State, Capability: c.name, Depth: c.depth})
			leave(v, c.depth+1)
		}
	}
	for _, c := range g.nodes[x].Provides {
		w := Withdrawn{Capability: c, StillProvidedBy: []string{}}
		for _, p := range g.allProviders(c) {
			if v, known := g.index[p]; !known || !gone[v] {
				w.StillProvidedBy = append(w.StillProvidedBy, p)
			}
		}
		im.Withdrawn = append(im.Withdrawn, w)
	}
	slices.SortStableFunc(im.Affected, func(a, b Affected) int {
		if a.Depth != b.Depth {
			return a.Depth - b.Depth
		}
		return int(g.index[a.Name] - g.index[b.Name])
	})
	return im, nil
}

// allProviders returns the components declaring c (in node order) followed
// by any other component the registry says provides it now.
func (g *Graph) allProviders(c string) []string {
	out := g.names(g.declared[c])
	for _, p := range g.registry[c] {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Text renders the reference's simulate remove layout, with the transitive
// impact the reference did not compute.
func (im Impact) Text() string {
	if len(im.Withdrawn) == 0 {
		return "No capabilities would be withdrawn (component provides none)\nNo other components would be affected\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Removing %s would:\n  - Withdraw capabilities:\n", im.Component)
	for _, w := range im.Withdrawn {
		still := ""
		if len(w.StillProvidedBy) > 0 {
			still = " (still provided by " + strings.Join(w.StillProvidedBy, ", ") + ")"
		}
		fmt.Fprintf(&b, "    → %s%s\n", w.Capability, still)
	}
	b.WriteString("  - Directly affect components:\n")
	direct := 0
	for _, a := range im.Affected {
		if a.Depth > 1 {
			break
		}
		direct++
		fmt.Fprintf(&b, "    → %s (requires %s, currently %s)\n", a.Name, a.Capability, a.State)
	}
	if direct == 0 {
		b.WriteString("    (no other components would be affected)\n")
		return b.String()
	}
	if direct < len(im.Affected) {
		b.WriteString("  - Transitively affect components:\n")
		for _, a := range im.Affected[direct:] {
			fmt.Fprintf(&b, "    → %s (requires %s, currently %s)\n", a.Name, a.Capability, a.State)
		}
	}
	fmt.Fprintf(&b, "  - Total: %d component(s) would lose required capabilities (%d directly, %d transitively)\n",
		len(im.Affected), direct, len(im.Affected)-direct)
	return b.String()
}

// PendingList answers pending.
type PendingList struct {
	Components []Waiting `json:"components"`
}

// Waiting is a component that is not running and lacks requirements.
type Waiting struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	InCycle bool      `json:"in_cycle"`
	Missing []Missing `json:"missing"`
}

// Missing is a requirement that is down.
type Missing struct {
	Capability string `json:"capability"`
	// Providers are the components declaring it; empty: no provider is
	// declared, so it will never come up.
	Providers []Provider `json:"providers"`
}

// Provider is a component declaring a missing capability.
type Provider struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// Pending lists, for every component that is neither running nor done, the
// requirements that are down and who could provide them. Components whose
// requirements are all up (a FAILED one waiting for its restart back-off)
// are not listed.
func (g *Graph) Pending() PendingList {
	p := PendingList{Components: []Waiting{}}
	for v, n := range g.nodes {
		if runningOrDone[n.State] {
			continue
		}
		w := Waiting{Name: n.Name, State: n.State, InCycle: g.inCycle[v], Missing: []Missing{}}
		for _, c := range n.Requires {
			if g.up(c) {
				continue
			}
			m := Missing{Capability: c, Providers: []Provider{}}
			for _, pv := range g.declared[c] {
				m.Providers = append(m.Providers, Provider{Name: g.nodes[pv].Name, State: g.nodes[pv].State})
			}
			w.Missing = append(w.Missing, m)
		}
		if len(w.Missing) > 0 {
			p.Components = append(p.Components, w)
		}
	}
	return p
}

// Text renders the pending layout.
func (p PendingList) Text() string {
	if len(p.Components) == 0 {
		return "No components are waiting for capabilities\n"
	}
	var b strings.Builder
	for _, w := range p.Components {
		cycle := ""
		if w.InCycle {
			cycle = ", in a dependency cycle"
		}
		fmt.Fprintf(&b, "%s (%s%s) waiting for:\n", w.Name, w.State, cycle)
		for _, m := range w.Missing {
			if len(m.Providers) == 0 {
				fmt.Fprintf(&b, "  → %s: no provider declared\n", m.Capability)
				continue
			}
			ps := make([]string, len(m.Providers))
			for i, pr := range m.Providers {
				ps[i] = fmt.Sprintf("%s (%s)", pr.Name, pr.State)
			}
			fmt.Fprintf(&b, "  → %s: provided by %s\n", m.Capability, strings.Join(ps, ", "))
		}
	}
	fmt.Fprintf(&b, "Total: %d component(s) waiting for capabilities\n", len(p.Components))
	return b.String()
}
