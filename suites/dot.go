package suites

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// dotGraph is what parseDOT understood of a Graphviz graph: its explicitly
// declared nodes (node statements, with their attributes) and its edges.
type dotGraph struct {
	Name     string
	Directed bool
	Nodes    map[string]map[string]string
	Edges    []dotEdge
}

type dotEdge struct {
	From, To string
	Attrs    map[string]string
}

// hasEdge reports whether g has an edge from → to.
func (g *dotGraph) hasEdge(from, to string) bool {
	for _, e := range g.Edges {
		if e.From == from && e.To == to {
			return true
		}
	}
	return false
}

// undeclared lists the edge ends that no node statement declares, in the
// order they first appear.
func (g *dotGraph) undeclared() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range g.Edges {
		for _, n := range []string{e.From, e.To} {
			if _, ok := g.Nodes[n]; !ok && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// parseDOT parses the DOT language (graphviz.org/doc/info/lang.html) as far
// as YakirOS's `graphctl dot` needs: one strict or plain graph or digraph
// holding node, edge, attribute, ID=ID and (nested) subgraph statements,
// with C, C++ and '#' line comments. HTML labels and ports are not
// supported and are reported as errors. Errors name the line.
func parseDOT(src string) (*dotGraph, error) {
	toks, err := dotTokens(src)
	if err != nil {
		return nil, err
	}
	p := &dotParser{toks: toks}
	g, err := p.graph()
	if err != nil {
		return nil, err
	}
	return g, nil
}

type dotToken struct {
	kind byte // 'i' identifier or quoted string, 'p' punctuation or edge op, 0 end
	text string
	line int
}

// dotTokens splits src into IDs (unquoted, with quoted strings unescaped),
// punctuation ({ } [ ] = ; , :) and edge operators (-> --).
func dotTokens(src string) ([]dotToken, error) {
	var toks []dotToken
	line := 1
	atLineStart := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			atLineStart = true
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '#' && atLineStart:
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		}
		atLineStart = false
		switch {
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated /* comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += 2 + end + 2
		case strings.HasPrefix(src[i:], "->") || strings.HasPrefix(src[i:], "--"):
			toks = append(toks, dotToken{'p', src[i : i+2], line})
			i += 2
		case strings.ContainsRune("{}[]=;,:", rune(c)):
			toks = append(toks, dotToken{'p', string(c), line})
			i++
		case c == '"':
			start := line
			var b strings.Builder
			i++
			for ; i < len(src) && src[i] != '"'; i++ {
				switch {
				case src[i] == '\\' && i+1 < len(src) && src[i+1] == '"':
					b.WriteByte('"')
					i++
				case src[i] == '\\' && i+1 < len(src) && src[i+1] == '\n':
					line++
					i++
				default:
					if src[i] == '\n' {
						line++
					}
					b.WriteByte(src[i])
				}
			}
			if i >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", start)
			}
			i++
			toks = append(toks, dotToken{'i', b.String(), start})
		case c == '<':
			return nil, fmt.Errorf("line %d: HTML strings are not supported", line)
		case isIDByte(c) || c == '-' || c == '.':
			j := i
			for j < len(src) && (isIDByte(src[j]) || src[j] == '.' || (j == i && src[j] == '-')) {
				j++
			}
			id := src[i:j]
			if !validUnquotedID(id) {
				return nil, fmt.Errorf("line %d: %q is not an ID (quote it)", line, id)
			}
			toks = append(toks, dotToken{'i', id, line})
			i = j
		default:
			return nil, fmt.Errorf("line %d: unexpected character %q", line, c)
		}
	}
	return append(toks, dotToken{0, "end of input", line}), nil
}

func isIDByte(c byte) bool {
	return c == '_' || c >= 0x80 || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))
}

// validUnquotedID is DOT's rule: a name (letters, digits, underscores, not
// starting with a digit) or a numeral ([-]digits[.digits]).
func validUnquotedID(id string) bool {
	if id == "" {
		return false
	}
	if c := id[0]; c != '-' && c != '.' && !(c >= '0' && c <= '9') {
		return !strings.ContainsAny(id, ".-")
	}
	num := strings.TrimPrefix(id, "-")
	intPart, frac, hasDot := strings.Cut(num, ".")
	digits := func(s string) bool { return strings.Trim(s, "0123456789") == "" }
	if hasDot {
		return (intPart != "" || frac != "") && digits(intPart) && digits(frac)
	}
	return intPart != "" && digits(intPart)
}

type dotParser struct {
	toks      []dotToken
	pos       int
	g         *dotGraph
	mentioned []string // every node named so far, in order, for subgraphs
}

func (p *dotParser) peek() dotToken { return p.toks[p.pos] }

func (p *dotParser) next() dotToken {
	t := p.toks[p.pos]
	if t.kind != 0 {
		p.pos++
	}
	return t
}

func (p *dotParser) errorf(t dotToken, format string, args ...any) error {
	return fmt.Errorf("line %d: %s (at %q)", t.line, fmt.Sprintf(format, args...), t.text)
}

// is reports whether t is the punctuation s.
func is(t dotToken, s string) bool { return t.kind == 'p' && t.text == s }

// keyword reports whether t is the (case-insensitive) keyword kw.
func keyword(t dotToken, kw string) bool { return t.kind == 'i' && strings.EqualFold(t.text, kw) }

func (p *dotParser) expect(s string) error {
	if t := p.next(); !is(t, s) {
		return p.errorf(t, "want %q", s)
	}
	return nil
}

// graph: [strict] (graph | digraph) [ID] '{' stmt_list '}'
func (p *dotParser) graph() (*dotGraph, error) {
	p.g = &dotGraph{Nodes: map[string]map[string]string{}}
	t := p.next()
	if keyword(t, "strict") {
		t = p.next()
	}
	switch {
	case keyword(t, "digraph"):
		p.g.Directed = true
	case keyword(t, "graph"):
	default:
		return nil, p.errorf(t, "want a graph or digraph header")
	}
	if t := p.peek(); t.kind == 'i' {
		p.g.Name = p.next().text
	}
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	if err := p.stmts(); err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != 0 {
		return nil, p.errorf(t, "text after the closing brace")
	}
	return p.g, nil
}

// stmts parses statements up to and including the closing brace.
func (p *dotParser) stmts() error {
	for {
		t := p.peek()
		switch {
		case t.kind == 0:
			return p.errorf(t, "missing closing brace")
		case is(t, "}"):
			p.next()
			return nil
		case is(t, ";"):
			p.next()
			continue
		}
		if err := p.stmt(); err != nil {
			return err
		}
	}
}

func (p *dotParser) stmt() error {
	t := p.peek()
	switch {
	case keyword(t, "graph") || keyword(t, "node") || keyword(t, "edge"):
		p.next()
		_, err := p.attrLists(true)
		return err
	case keyword(t, "subgraph") || is(t, "{"):
		_, err := p.subgraph()
		return err
	case t.kind != 'i':
		return p.errorf(t, "want a statement")
	}
	id := p.next().text
	if is(p.peek(), ":") {
		return p.errorf(p.peek(), "ports are not supported")
	}
	if is(p.peek(), "=") {
		p.next()
		if v := p.next(); v.kind != 'i' {
			return p.errorf(v, "want a value after %s =", id)
		}
		return nil
	}
	if p.edgeOp() {
		return p.edges([]string{id})
	}
	attrs, err := p.attrLists(false)
	if err != nil {
		return err
	}
	p.mentioned = append(p.mentioned, id)
	node := p.g.Nodes[id]
	if node == nil {
		node = map[string]string{}
		p.g.Nodes[id] = node
	}
	for k, v := range attrs {
		node[k] = v
	}
	return nil
}

// edgeOp reports whether an edge operator follows.
func (p *dotParser) edgeOp() bool {
	t := p.peek()
	return is(t, "->") || is(t, "--")
}

// edges parses the rest of an edge statement whose first end is from.
func (p *dotParser) edges(from []string) error {
	p.mentioned = append(p.mentioned, from...)
	chain := [][]string{from}
	for p.edgeOp() {
		op := p.next()
		if (op.text == "->") != p.g.Directed {
			return p.errorf(op, "edge operator does not match the graph kind")
		}
		t := p.peek()
		var ends []string
		switch {
		case t.kind == 'i' && !keyword(t, "subgraph"):
			ends = []string{p.next().text}
			p.mentioned = append(p.mentioned, ends...)
		case keyword(t, "subgraph") || is(t, "{"):
			var err error
			if ends, err = p.subgraph(); err != nil {
				return err
			}
		default:
			return p.errorf(t, "want an edge target")
		}
		chain = append(chain, ends)
	}
	attrs, err := p.attrLists(false)
	if err != nil {
		return err
	}
	for i := 1; i < len(chain); i++ {
		for _, a := range chain[i-1] {
			for _, b := range chain[i] {
				p.g.Edges = append(p.g.Edges, dotEdge{From: a, To: b, Attrs: attrs})
			}
		}
	}
	return nil
}

// subgraph parses [subgraph [ID]] '{' stmt_list '}' and returns the nodes
// it mentions, for edges to and from it. Its nodes belong to the graph.
func (p *dotParser) subgraph() ([]string, error) {
	if keyword(p.peek(), "subgraph") {
		p.next()
		if p.peek().kind == 'i' {
			p.next()
		}
	}
	start := len(p.mentioned)
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	if err := p.stmts(); err != nil {
		return nil, err
	}
	var members []string
	for _, n := range p.mentioned[start:] {
		if !slices.Contains(members, n) {
			members = append(members, n)
		}
	}
	if p.edgeOp() {
		return members, p.edges(members)
	}
	return members, nil
}

// attrLists parses zero or more [a=b, c=d; e=f] lists (at least one when
// required) and merges them.
func (p *dotParser) attrLists(required bool) (map[string]string, error) {
	attrs := map[string]string{}
	if required && !is(p.peek(), "[") {
		return nil, p.errorf(p.peek(), "want an attribute list")
	}
	for is(p.peek(), "[") {
		p.next()
		for !is(p.peek(), "]") {
			k := p.next()
			if k.kind != 'i' {
				return nil, p.errorf(k, "want an attribute name")
			}
			if err := p.expect("="); err != nil {
				return nil, err
			}
			v := p.next()
			if v.kind != 'i' {
				return nil, p.errorf(v, "want a value for %s", k.text)
			}
			attrs[k.text] = v.text
			if t := p.peek(); is(t, ",") || is(t, ";") {
				p.next()
			}
		}
		p.next()
	}
	return attrs, nil
}
