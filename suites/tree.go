package suites

import (
	"fmt"
	"regexp"
	"strings"
)

// treeNode is one entry of a box-drawing tree (`graphctl tree`): its text
// without the drawing, and the entries drawn below it.
type treeNode struct {
	Text     string
	Children []*treeNode
	last     bool // drawn with └──
}

// find returns the first node, depth first, whose text satisfies match.
func (n *treeNode) find(match func(string) bool) *treeNode {
	for _, c := range n.Children {
		if match(c.Text) {
			return c
		}
		if f := c.find(match); f != nil {
			return f
		}
	}
	return nil
}

// parseTree parses the layout of `graphctl tree` (yakiros-reference §7.3):
// lines without drawing start a section (the component's name, then
// "provides:"); every other line is "<indent><├── or └──><text>", where
// the indent has one "│   " or "    " per ancestor below the section: "│"
// exactly when that ancestor has a later sibling. It returns the sections,
// and rejects drawing that contradicts itself, so a tree that is cut short
// or misnested does not pass for a full one.
func parseTree(out string) ([]*treeNode, error) {
	var sections []*treeNode
	var path []*treeNode // path[0] is the section, path[i] the open entry at depth i
	for n, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		n++
		line = strings.TrimRight(line, " \r")
		if line == "" {
			return nil, fmt.Errorf("line %d is empty", n)
		}
		indent, connector, text, ok := cutTreeLine(line)
		if !ok {
			sec := &treeNode{Text: line}
			sections = append(sections, sec)
			path = []*treeNode{sec}
			continue
		}
		if len(path) == 0 {
			return nil, fmt.Errorf("line %d: entry %q before any heading", n, text)
		}
		depth := len(indent) + 1
		if depth > len(path) {
			return nil, fmt.Errorf("line %d: %q is nested %d levels deep under an entry at depth %d", n, text, depth, len(path)-1)
		}
		for i, seg := range indent {
			if want := treeIndent(path[i+1].last); seg != want {
				return nil, fmt.Errorf("line %d: indent %d is %q; want %q since %q is drawn with %s", n, i+1, seg, want, path[i+1].Text, connectorOf(path[i+1].last))
			}
		}
		parent := path[depth-1]
		if k := len(parent.Children); k > 0 && parent.Children[k-1].last {
			return nil, fmt.Errorf("line %d: %q follows %q, which is drawn as the last entry", n, text, parent.Children[k-1].Text)
		}
		node := &treeNode{Text: text, last: connector == "└── "}
		parent.Children = append(parent.Children, node)
		path = append(path[:depth], node)
	}
	for _, s := range sections {
		if err := checkLast(s); err != nil {
			return nil, err
		}
	}
	return sections, nil
}

// cutTreeLine splits a drawn entry into its indent segments, connector and
// text.
func cutTreeLine(line string) (indent []string, connector, text string, ok bool) {
	rest := line
	for {
		switch {
		case strings.HasPrefix(rest, "├── "), strings.HasPrefix(rest, "└── "):
			connector = rest[:len("├── ")]
			return indent, connector, rest[len(connector):], true
		case strings.HasPrefix(rest, "│   "):
			indent = append(indent, "│   ")
			rest = rest[len("│   "):]
		case strings.HasPrefix(rest, "    "):
			indent = append(indent, "    ")
			rest = rest[4:]
		default:
			return nil, "", "", false
		}
	}
}

func treeIndent(ancestorLast bool) string {
	if ancestorLast {
		return "    "
	}
	return "│   "
}

func connectorOf(last bool) string {
	if last {
		return "└──"
	}
	return "├──"
}

// checkLast requires every list of entries to end with └── and have no
// other └──.
func checkLast(n *treeNode) error {
	for i, c := range n.Children {
		if last := i == len(n.Children)-1; c.last != last {
			return fmt.Errorf("%q under %q is drawn with %s but is entry %d of %d", c.Text, n.Text, connectorOf(c.last), i+1, len(n.Children))
		}
		if err := checkLast(c); err != nil {
			return err
		}
	}
	return nil
}

// treeRequirement is a "requires:" entry of a tree: "requires: <cap>
// (UP, from <providers>)", "(DOWN)" or "(DOWN, declared by <providers>)",
// then " [see above]" or " [cycle]" where the tree does not expand the
// provider again.
var treeRequirement = regexp.MustCompile(`^requires: (\S+) \((UP, from|DOWN, declared by|DOWN)(?: ([^()]+))?\)( \[see above\]| \[cycle\])?$`)

// requirement is a parsed treeRequirement.
type requirement struct {
	Capability string
	Up         bool
	Providers  []string
	Cut        string // "", "see above" or "cycle"
}

func parseRequirement(text string) (requirement, bool) {
	m := treeRequirement.FindStringSubmatch(text)
	if m == nil || (m[2] == "DOWN") != (m[3] == "") {
		return requirement{}, false
	}
	r := requirement{Capability: m[1], Up: m[2] == "UP, from", Cut: strings.Trim(m[4], " []")}
	if m[3] != "" {
		r.Providers = strings.Split(m[3], ", ")
	}
	return r, true
}
