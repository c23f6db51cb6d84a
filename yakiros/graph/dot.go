package graph

import (
	"fmt"
	"slices"
	"strings"
)

// stateColours fills component nodes by state; other states are lightgray.
var stateColours = map[string]string{
	"ACTIVE": "lightgreen", "DONE": "lightgreen",
	"FAILED":   "lightcoral",
	"STARTING": "lightyellow", "READY_WAIT": "lightyellow", "STOPPING": "lightyellow",
	"DEGRADED": "gold",
	"CYCLE":    "orange",
}

// Dot renders the graph for Graphviz in the reference's layout: components
// are boxes filled by state, capabilities ellipses (lightblue when up,
// lightcoral when down, dashed when no component declares them), and both
// edge kinds point from the component to the capability: requires red
// (dashed when optional), provides green with a diamond head.
//
// Unlike the reference it quotes names properly, gives every capability a
// node (not only those in the registry), and keeps capabilities and the
// legend in their own namespaces ("cap:", "legend:"), which component names
// cannot collide with because they never contain ':'. Its data counterpart is
// the text itself.
func (g *Graph) Dot() string {
	var b strings.Builder
	b.WriteString("digraph yakiros {\n    rankdir=LR;\n    node [shape=box, style=filled];\n\n    // Components\n")
	for _, n := range g.nodes {
		colour, ok := stateColours[n.State]
		if !ok {
			colour = "lightgray"
		}
		fmt.Fprintf(&b, "    %s [fillcolor=%s];\n", quote(n.Name), colour)
	}
	b.WriteString("\n    // Capabilities\n")
	caps := g.capabilities()
	names := make([]string, 0, len(caps))
	for c := range caps {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		colour, style := "lightcoral", ""
		if g.up(c) {
			colour = "lightblue"
		} else if len(g.declared[c]) == 0 {
			style = `, style="filled,dashed"`
		}
		fmt.Fprintf(&b, "    %s [label=%s, shape=ellipse, fillcolor=%s%s];\n", capID(c), quote(c), colour, style)
	}
	b.WriteString("\n    // Dependencies\n")
	for _, n := range g.nodes {
		for _, c := range n.Requires {
			fmt.Fprintf(&b, "    %s -> %s [color=red];\n", quote(n.Name), capID(c))
		}
		for _, c := range n.Optional {
			fmt.Fprintf(&b, "    %s -> %s [color=red, style=dashed];\n", quote(n.Name), capID(c))
		}
	}
	b.WriteString("\n    // Provisions\n")
	for _, n := range g.nodes {
		for _, c := range n.Provides {
			fmt.Fprintf(&b, "    %s -> %s [color=green, arrowhead=diamond];\n", quote(n.Name), capID(c))
		}
	}
	b.WriteString(`
    // Legend
    subgraph cluster_legend {
        label="Legend";
        style=filled;
        fillcolor=lightgray;
        "legend:component" [label="Component", fillcolor=lightgreen];
        "legend:capability" [label="Capability", shape=ellipse, fillcolor=lightblue];
        "legend:provided" [label="Provided Cap", shape=ellipse, fillcolor=lightblue];
        "legend:component" -> "legend:capability" [label="requires", color=red];
        "legend:component" -> "legend:provided" [label="provides", color=green, arrowhead=diamond];
    }
}
`)
	return b.String()
}

func capID(c string) string { return quote("cap:" + c) }

// quote makes s a DOT quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
