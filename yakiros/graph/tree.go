package graph

import (
	"fmt"
	"strings"
)

// RequirementTree answers tree: what a component requires, what those
// requirements' providers require, and so on to full depth.
type RequirementTree struct {
	Component string        `json:"component"`
	State     string        `json:"state"`
	Requires  []Requirement `json:"requires"` // requirements first, then optional ones
	Provides  []string      `json:"provides"`
}

// Requirement is one required (or optional) capability in a tree.
type Requirement struct {
	Capability string `json:"capability"`
	Optional   bool   `json:"optional"`
	Up         bool   `json:"up"`
	// Providers are who provides it now when it is up, else who declares it
	// (empty: nobody does), each with what it requires in turn.
	Providers []Branch `json:"providers"`
}

// Branch is a provider in a tree.
type Branch struct {
	Component string `json:"component"`
	State     string `json:"state"` // "" if the registry names a component the graph does not know
	// Cut says why Requires is not expanded here: "cycle" when the component
	// is already on the path from the root, "repeat" when it was expanded
	// earlier in the tree.
	Cut      string        `json:"cut,omitempty"`
	Requires []Requirement `json:"requires"`
}

// Tree returns the requirement tree of the named component.
func (g *Graph) Tree(name string) (RequirementTree, error) {
	v, ok := g.index[name]
	if !ok {
		return RequirementTree{}, fmt.Errorf("component '%s' not found", name)
	}
	t := treeBuilder{g: g, onPath: map[int32]bool{v: true}, expanded: map[int32]bool{v: true}}
	n := g.nodes[v]
	return RequirementTree{Component: n.Name, State: n.State, Requires: t.requirements(v), Provides: nonNil(n.Provides)}, nil
}

type treeBuilder struct {
	g        *Graph
	onPath   map[int32]bool // components between the root and the branch being built
	expanded map[int32]bool // components whose requirements are in the tree already
}

func (t *treeBuilder) requirements(v int32) []Requirement {
	out := []Requirement{}
	add := func(caps []string, optional bool) {
		for _, c := range caps {
			r := Requirement{Capability: c, Optional: optional, Up: t.g.up(c), Providers: []Branch{}}
			for _, p := range t.g.providers(c) {
				r.Providers = append(r.Providers, t.branch(p))
			}
			out = append(out, r)
		}
	}
	n := t.g.nodes[v]
	add(n.Requires, false)
	add(n.Optional, true)
	return out
}

func (t *treeBuilder) branch(name string) Branch {
	b := Branch{Component: name, Requires: []Requirement{}}
	p, known := t.g.index[name]
	if !known {
		return b
	}
	n := t.g.nodes[p]
	b.State = n.State
	switch {
	case t.onPath[p]:
		b.Cut = "cycle"
	case len(n.Requires) == 0 && len(n.Optional) == 0:
		// Nothing to expand, so nothing to cut either.
	case t.expanded[p]:
		b.Cut = "repeat"
	default:
		t.expanded[p], t.onPath[p] = true, true
		b.Requires = t.requirements(p)
		delete(t.onPath, p)
	}
	return b
}

// Text renders the reference's tree layout at full depth. A requirement with
// one provider has that provider's requirements nested directly below it, as
// in the reference; with several, each provider gets a "via" line. A down
// requirement names who declares it, so the tree shows why it is down.
func (t RequirementTree) Text() string {
	var b strings.Builder
	b.WriteString(t.Component + "\n")
	writeRequirements(&b, "", t.Requires)
	if len(t.Provides) > 0 {
		b.WriteString("provides:\n")
		for i, c := range t.Provides {
			branch, _ := glyphs(i == len(t.Provides)-1)
			b.WriteString(branch + c + "\n")
		}
	}
	return b.String()
}

// glyphs returns the prefix of an entry and the indentation below it.
func glyphs(last bool) (branch, below string) {
	if last {
		return "└── ", "    "
	}
	return "├── ", "│   "
}

func writeRequirements(b *strings.Builder, indent string, reqs []Requirement) {
	for i, r := range reqs {
		branch, below := glyphs(i == len(reqs)-1)
		kind := "requires"
		if r.Optional {
			kind = "optional"
		}
		names := make([]string, len(r.Providers))
		for j, p := range r.Providers {
			names[j] = p.Component
		}
		var status string
		switch {
		case r.Up:
			status = "UP, from " + strings.Join(names, ", ")
		case len(names) == 0:
			status = "DOWN"
		default:
			status = "DOWN, declared by " + strings.Join(names, ", ")
		}
		fmt.Fprintf(b, "%s%s%s: %s (%s)", indent, branch, kind, r.Capability, status)
		if len(r.Providers) == 1 {
			p := r.Providers[0]
			b.WriteString(cutMarker(p.Cut) + "\n")
			writeRequirements(b, indent+below, p.Requires)
			continue
		}
		b.WriteString("\n")
		for j, p := range r.Providers {
			pBranch, pBelow := glyphs(j == len(r.Providers)-1)
			state := ""
			if p.State != "" {
				state = " (" + p.State + ")"
			}
			fmt.Fprintf(b, "%s%s%svia %s%s%s\n", indent, below, pBranch, p.Component, state, cutMarker(p.Cut))
			writeRequirements(b, indent+below+pBelow, p.Requires)
		}
	}
}

func cutMarker(cut string) string {
	switch cut {
	case "cycle":
		return " [cycle]"
	case "repeat":
		return " [see above]"
	}
	return ""
}
